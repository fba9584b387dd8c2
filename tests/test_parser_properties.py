"""Property-based tests of the parser (hypothesis): random files as they come.

Profiles (docs/parsing.md): `parser-quick` runs in ./run.sh test (a few hundred
examples); PARSER_PROFILE=parser-long runs tens of thousands.
"""
import csv
import io
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.importer.records import NULL
from server.importer.header import EncodingUnclear
from server.importer.parse import parse_batch, read_header
from server.importer.ranges import count_lines, plan_cuts

settings.register_profile("parser-quick", max_examples=150, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("parser-long", max_examples=int(os.environ.get("PARSER_EXAMPLES", "20000")), deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
PROFILE = settings.get_profile(os.environ.get("PARSER_PROFILE", "parser-quick"))

HEADER = "Customer Id,First Name,About"
WIDTH = 3
MAX_RECORD = 200  # small, so that long records and stray quotes meet the limit often
VALUE_CHARS = list('ab ,"\n\r\t\\é+=@-') + ["\u00a0", "ü"]

value = st.text(alphabet=st.sampled_from(VALUE_CHARS), max_size=10)
eol = st.sampled_from(["\n", "\r\n"])


def quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


@st.composite
def valid_record(draw) -> str:
    fields = [f"id{draw(st.integers(0, 40))}", draw(value), draw(value)]
    out = []
    for field in fields:
        must = any(c in field for c in ',"\n\r')
        out.append(quoted(field) if must or draw(st.booleans()) else field)
    return ",".join(out) + draw(eol)


@st.composite
def valid_file(draw) -> bytes:
    records = draw(st.lists(st.one_of(valid_record(), eol), max_size=25))
    bom = b"\xef\xbb\xbf" if draw(st.booleans()) else b""
    return bom + (HEADER + "\n" + "".join(records)).encode()


messy_line = st.one_of(
    valid_record().map(str.encode),
    eol.map(str.encode),
    st.builds(lambda i, e: f'{i},id{i},Jo"hn,"Doe{e}'.encode(), st.integers(0, 9), eol),  # stray quotes
    st.builds(lambda i: f'{i},"never closes\n'.encode(), st.integers(0, 9)),
    st.builds(lambda i: f"id{i},only two\n".encode(), st.integers(0, 9)),                 # ragged
    st.builds(lambda i: f"id{i},Ann\rLee,x\n".encode(), st.integers(0, 9)),               # bare CR
    st.just(b"idx,\xff\xfe,bad utf-8\n"),
    st.just(b"idn,nul\x00,x\n"),
    st.builds(lambda n: b"idl,long," + b"y" * n + b"\n", st.integers(150, 500)),          # long lines
    st.just(b'"'), st.just(b"\r"), st.just(b"idz,no,final newline"),
)


@st.composite
def messy_file(draw) -> bytes:
    bom = b"\xef\xbb\xbf" if draw(st.booleans()) else b""
    return bom + HEADER.encode() + b"\n" + b"".join(draw(st.lists(messy_line, max_size=30)))


bounds = st.fixed_dictionaries({
    "batch_bytes": st.sampled_from([16, 64, 100, 300, 4096]),
    "max_rows": st.integers(1, 30),
    "max_rejects": st.integers(1, 30),
    "first_chunk": st.sampled_from([8, 50, 1000, 64 * 1024]),
})


def header_of(path: Path, options: dict | None = None):
    try:
        return read_header(path, 4096, options)
    except EncodingUnclear:  # as a person would, once told: these files are meant as UTF-8
        return read_header(path, 4096, {"encoding": "utf-8"})


def parse_all(path: Path, bounds: dict, start: tuple[int, int] | None = None, options: dict | None = None) -> list:
    header = header_of(path, options)
    offset, line = start or (header.data_offset, header.data_line)
    size = path.stat().st_size
    batches = []
    while True:
        batch = parse_batch(path, header, offset, line, max_record_bytes=MAX_RECORD, job_id=1,
                            file_size=size, **bounds)
        batches.append(batch)
        if batch.eof:
            return batches
        assert batch.end_offset > offset, "a batch must move on"
        offset, line = batch.end_offset, batch.end_line


def parse_in_ranges(path: Path, bounds: dict, count: int) -> tuple[list, list[int]]:
    """The batches of the file cut into `count` ranges as the engine plans them, in file order; the cuts."""
    header = header_of(path)
    size = path.stat().st_size
    cuts = plan_cuts(path, header, header.data_offset, size, count, MAX_RECORD)
    edges = [header.data_offset, *cuts, size]
    batches = []
    for start, end in zip(edges, edges[1:]):
        offset, line = start, header.data_line + count_lines(path, header.data_offset, start)
        while True:
            batch = parse_batch(path, header, offset, line, max_record_bytes=MAX_RECORD, job_id=1,
                                file_size=size, stop_offset=end, **bounds)
            batches.append(batch)
            if batch.eof:
                assert batch.end_offset == end, "a range ends where the next one starts"
                break
            assert batch.end_offset > offset, "a batch must move on"
            offset, line = batch.end_offset, batch.end_line
    return batches, cuts


def copy_values(line: bytes) -> list:
    """A COPY text-format line back into values (None for NULL)."""
    out = []
    for field in line.decode().rstrip("\n").split("\t"):
        if field == NULL:
            out.append(None)
            continue
        text, i = [], 0
        while i < len(field):
            if field[i] == "\\":
                text.append({"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}[field[i + 1]])
                i += 2
            else:
                text.append(field[i])
                i += 1
        out.append("".join(text))
    return out


def outcome(batches: list) -> tuple:
    """What a job ends with: the table (last occurrence of each id), the counters, the rejects."""
    table, rows = {}, 0
    for batch in batches:
        rows += batch.accepted
        for line in batch.lines:
            values = copy_values(line)
            table[values[0]] = (values[1], values[11])
    rejects = [(r[0], r[1], r[2], r[3]) for b in batches for r in b.rejects]
    return table, rows, rejects, sum(b.blank_lines for b in batches)


def physical_lines(data: bytes) -> int:
    return data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)


def lines_of(raw: bytes) -> int:
    return raw.count(b"\n") + (0 if raw.endswith(b"\n") else 1)


@PROFILE
@given(data=messy_file(), bounds=bounds)
def test_every_line_is_accounted_for_exactly_once(tmp_path_factory, data, bounds):
    path = tmp_path_factory.mktemp("p") / "f.csv"
    path.write_bytes(data)
    batches = parse_all(path, bounds)
    header_end = data.index(b"\n") + 1
    body = data[header_end:]
    accepted = sum(b.accepted_lines for b in batches)
    blank = sum(b.blank_lines for b in batches)
    rejected = 0
    last_end = header_end
    for line_no, offset, _, raw in (r for b in batches for r in b.rejects):
        assert offset >= last_end, "rejects never overlap"
        assert data[offset:offset + len(raw)] == raw
        assert line_no == 1 + data[:offset].count(b"\n")
        length = len(raw) if len(raw) < MAX_RECORD else data.find(b"\n", offset) + 1 - offset or len(data) - offset
        last_end = offset + length
        rejected += lines_of(raw)
    assert accepted + blank + rejected == physical_lines(body)
    assert batches[-1].end_offset == len(data) and batches[-1].end_line == 2 + physical_lines(body)


@PROFILE
@given(data=valid_file(), bounds=bounds)
def test_a_valid_file_reads_as_pythons_csv_module_reads_it(tmp_path_factory, data, bounds):
    path = tmp_path_factory.mktemp("v") / "f.csv"
    path.write_bytes(data)
    table, rows, rejects, _ = outcome(parse_all(path, bounds))
    expected = {}
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    next(reader)
    count = 0
    for record in reader:
        if not record:
            continue
        count += 1
        values = [v.strip() or None for v in record]
        expected[values[0]] = (values[1], values[2])
    assert rejects == []
    assert rows == count
    assert table == expected


@PROFILE
@given(data=messy_file(), first=bounds, then=bounds, at=st.integers(0, 50))
def test_a_resume_from_any_batch_boundary_gives_the_same_outcome(tmp_path_factory, data, first, then, at):
    path = tmp_path_factory.mktemp("r") / "f.csv"
    path.write_bytes(data)
    straight = parse_all(path, first)
    boundary = straight[min(at, len(straight) - 1)]
    resumed = straight[:straight.index(boundary) + 1]
    if not boundary.eof:
        resumed += parse_all(path, then, start=(boundary.end_offset, boundary.end_line))
    assert outcome(resumed) == outcome(straight)
    assert outcome(parse_all(path, then)) == outcome(straight)


@PROFILE
@given(data=messy_file(), bounds=bounds, count=st.integers(2, 8))
def test_a_file_read_in_ranges_by_pipelines_gives_the_outcome_of_one_reader(tmp_path_factory, data, bounds, count):
    """Whatever the quotes, the plan cuts only where the reader from the top starts a record."""
    path = tmp_path_factory.mktemp("g") / "f.csv"
    path.write_bytes(data)
    straight = parse_all(path, bounds)
    ranged, cuts = parse_in_ranges(path, bounds, count)
    assert outcome(ranged) == outcome(straight), f"cuts at {cuts}"
    assert ranged[-1].end_line == straight[-1].end_line


# -- the encoding (issue 22): a valid UTF-8 row is never read as anything else ---------------------

name = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters=",\"'"),
               min_size=1, max_size=8).map(str.strip).filter(bool)
invalid_line = st.sampled_from([b"bad,Jos\xe9,x\n", b"bad,M\xfcller \xff\xfe,x\n", b"bad,\xc3(,x\n",
                                b"bad,\x80,x\n", b"bad,\xed\xa0\x80,x\n", b"bad,\xf8\x88\x80\x80\x80,x\n"])


def with_line_at(names: list[str], bad: bytes, at: int) -> bytes:
    lines = [f"id{i},{n},x\n".encode() for i, n in enumerate(names)]
    lines.insert(min(at, len(lines)), bad)
    return HEADER.encode() + b"\n" + b"".join(lines)


def stored(tmp_path_factory, data: bytes, options: dict | None = None) -> dict | None:
    """Customer Id -> First Name as an import would store them; None when the import is refused."""
    path = tmp_path_factory.mktemp("e") / "f.csv"
    path.write_bytes(data)
    try:
        header = read_header(path, 4096, options)
    except EncodingUnclear:
        return None
    batches = []
    offset, line = header.data_offset, header.data_line
    while not (batches and batches[-1].eof):
        batches.append(parse_batch(path, header, offset, line, max_record_bytes=4096, job_id=1,
                                   file_size=len(data), batch_bytes=4096))
        offset, line = batches[-1].end_offset, batches[-1].end_line
    return {values[0]: values[1] for b in batches for values in map(copy_values, b.lines)}


@PROFILE
@given(names=st.lists(name, min_size=1, max_size=20), bad=invalid_line, at=st.integers(0, 20),
       elsewhere=st.integers(0, 20))
def test_a_valid_utf8_row_is_stored_as_utf8_reads_it_wherever_the_invalid_line_is(
        tmp_path_factory, names, bad, at, elsewhere):
    expected = {f"id{i}": n for i, n in enumerate(names)}
    here = stored(tmp_path_factory, with_line_at(names, bad, at))
    there = stored(tmp_path_factory, with_line_at(names, bad, elsewhere))
    if here is None:  # mixed evidence: refused (422), and so it is wherever the line is
        assert there is None
        return
    assert {k: here.get(k) for k in expected} == expected
    assert there == here  # the position of the invalid line changes nothing
    chosen = stored(tmp_path_factory, with_line_at(names, bad, at), {"encoding": "utf-8"})
    assert chosen == expected  # asked for UTF-8: never refused, the invalid line a reject


@PROFILE
@given(names=st.lists(name, min_size=1, max_size=20))
def test_a_latin_file_chosen_as_such_is_read_as_chosen(tmp_path_factory, names):
    """Unless the person chose another encoding: then every row is read in it, as asked."""
    data = HEADER.encode() + b"\n" + b"".join(f"id{i},{n},x\n".encode() for i, n in enumerate(names))
    chosen = stored(tmp_path_factory, data, {"encoding": "latin-1"})
    assert chosen == {f"id{i}": n.encode().decode("latin-1").strip() or None for i, n in enumerate(names)}
