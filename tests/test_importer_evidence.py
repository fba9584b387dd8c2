"""Files as they come, tried as a careless or hostile sender would: the encoding decided by the
evidence of the whole sample, and no file, however odd, that ends detection, preview or import in
a traceback (issue 22). Checked over HTTP, in the customers table."""
from __future__ import annotations

import gzip

import aiohttp
import pytest

from tests.importing import HEADER, TERMINAL, row, wait_for_status
from tests.processes import cli, server_env
from tests.test_tus import create, patch

NAMES = ("José", "Müller", "Zürich")
STORED = "SELECT customer_id, first_name, last_name, city FROM customers ORDER BY customer_id"


def utf8_rows(count: int, *, bad_at: int | None = None, about: str = "Likes tea") -> bytes:
    """A UTF-8 customer file of `count` rows (José Müller of Zürich), one line of invalid bytes after
    row `bad_at`."""
    lines = [HEADER.encode()]
    for i in range(1, count + 1):
        lines.append(f"{i},C{i:05},José,Müller,Acme,Zürich,Schweiz,+41 1234,,jose{i}@example.ch,2021-05-06,"
                     f"https://example.ch,{about}".encode())
        if i == bad_at:
            lines.append(b"0,BAD,Jos\xe9 \xff\xfe,M\xfcller,Acme,Z\xfcrich,Schweiz,,,,,,")
    return b"\n".join(lines) + b"\n"


def form(data: bytes, filename: str = "customers.csv", **fields: str) -> aiohttp.FormData:
    body = aiohttp.FormData()
    for name, value in fields.items():
        body.add_field(name, value)
    body.add_field("file", data, filename=filename, content_type="text/csv")
    return body


async def imported(client, name: str, **options) -> dict:
    resp = await client.post("/import", json={"path": name, **options})
    assert resp.status == 202, await resp.text()
    return await wait_for_status(client.app, (await resp.json())["id"], TERMINAL)


# -- the encoding, by evidence --------------------------------------------------------------------

@pytest.mark.parametrize("bad_at", [1, 500, 1000])
async def test_one_bad_line_in_a_utf8_file_is_a_reject_wherever_it_is(client, config, db, bad_at):
    """Before: an invalid line in the first megabyte read the whole file as Windows-1252 (JosÃ©)."""
    (config.import_dir / "u.csv").write_bytes(utf8_rows(1000, bad_at=bad_at))
    job = await imported(client, "u.csv")
    assert (job["status"], job["inserted"], job["rejected"]) == ("completed", 1000, 1), job
    assert job["options"]["encoding"] == "utf-8"
    stored = await db.all(STORED)
    assert {r[1:] for r in stored} == {NAMES}
    reason, raw = await db.one("SELECT reason, raw FROM import_rejects")
    assert reason == "not valid UTF-8" and bytes(raw).startswith(b"0,BAD,Jos\xe9")


async def test_a_bad_line_past_the_sample_changes_nothing_either(client, config, db):
    data = utf8_rows(1500, about="x" * 1000)  # about 1.6 MB: the sample is the first megabyte
    cut = data.index(b"\n1400,")
    (config.import_dir / "late.csv").write_bytes(data[:cut] + b"\n0,BAD,Jos\xe9,,,,,,,,,," + data[cut:])
    job = await imported(client, "late.csv")
    assert (job["status"], job["inserted"], job["rejected"], job["options"]["encoding"]) == \
        ("completed", 1500, 1, "utf-8"), job
    assert await db.value("SELECT count(*) FROM customers WHERE first_name = 'José'") == 1500


async def test_evidence_that_is_half_utf8_half_not_is_422_naming_both(client, config, db):
    half = "\n".join([HEADER] + [row(i, f"H{i}", "Müller") for i in range(1, 5)]) + "\n"
    other = "\n".join(row(i, f"H{i}", "Müller") for i in range(5, 9)) + "\n"
    (config.import_dir / "mixed.csv").write_bytes(half.encode() + other.encode("cp1252"))
    for route in ("/import", "/import/preview"):
        resp = await client.post(route, json={"path": "mixed.csv"})
        assert resp.status == 422, await resp.text()
        body = await resp.json()
        assert body["field"] == "encoding" and body["encodings"] == ["utf-8", "windows-1252"]
        assert "utf-8" in body["error"] and "windows-1252" in body["error"]
    assert await db.value("SELECT count(*) FROM import_jobs") == 0
    job = await imported(client, "mixed.csv", encoding="utf-8")  # the person decides
    assert (job["inserted"], job["rejected"]) == (4, 4), job


async def test_the_command_line_asks_for_the_encoding_when_the_evidence_is_mixed(db, db_url, tmp_path):
    half = "\n".join([HEADER] + [row(i, f"H{i}", "Müller") for i in range(1, 5)]) + "\n"
    (tmp_path / "mixed.csv").write_bytes(half.encode() + row(5, "H5", "Müller").encode("cp1252") + b"\n")
    proc = cli("import", str(tmp_path / "mixed.csv"), "--no-progress", env=server_env(DATABASE_URL=db_url))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "utf-8" in err and "windows-1252" in err, err
    assert await db.value("SELECT count(*) FROM import_jobs") == 0


async def test_the_preview_shows_decoded_non_ascii_words(client, config):
    resp = await client.post("/import/preview", data=form(utf8_rows(30, bad_at=3)))
    assert resp.status == 200, await resp.text()
    preview = await resp.json()
    assert preview["encoding"] == "utf-8"
    assert preview["non_ascii_examples"] == ["José", "Müller", "Zürich"]
    resp = await client.post("/import/preview", data=form("Customer Id,Name\nA1,Françoise\n".encode("cp1252")))
    assert (await resp.json())["non_ascii_examples"] == ["Françoise"]


# -- hostile files: never a traceback ------------------------------------------------------------

def with_about(about: str, rows: int = 20) -> bytes:
    """`rows` customers named Zoë: UTF-8 evidence enough that one invalid byte is a reject."""
    lines = [HEADER] + [row(i, f"L{i}", "Zoë", about=about) for i in range(1, rows + 1)]
    return ("\n".join(lines) + "\n").encode()


HUGE = "word " * 100_000 + "end"  # 500 KB: under the record limit, over csv's default field limit
GOOD = with_about("Likes tea")
BAD = b"L\xffe,Acme"  # one byte that is no UTF-8
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00\x1f\xf3\xffa"
       + bytes(range(256)) * 4)
# name -> (bytes, the answers preview and import may give, what the error names or the rows imported)
CORPUS = {
    # Under About Customer's limit (1,000,000 characters, the API's too): imported, no traceback.
    "a 500 KB value": (GOOD + row(99, "L99", about=HUGE).encode() + b"\n", 200, 21),
    "a 500 KB quoted value with line breaks": (GOOD + row(99, "L99", about=f'"{HUGE}\n{HUGE[:1000]}"').encode()
                                               + b"\n", 200, 21),
    # Past it (a record still under MAX_RECORD_BYTES): a reject that names the field and its limit.
    "a value past its field's limit": (GOOD + row(99, "L99", about="y" * 1_000_001).encode() + b"\n", 200, 20),
    "a value past the record limit": (GOOD + b"99,L99," + b"x" * (1024**2 + 10) + b"\n", 200, 20),
    "invalid bytes in the first row": (GOOD.replace(b"Lee,Acme", BAD, 1), 200, 19),
    "invalid bytes in a middle row": (GOOD.replace(b"L10,Zo\xc3\xab,Lee,Acme", b"L10,Zo\xc3\xab," + BAD), 200, 19),
    "invalid bytes in the last row": (GOOD[:-5] + b"\xfe\xff\n", 200, 19),
    "invalid bytes in the header": (GOOD.replace(b"Index", b"Ind\xffex"), 415, "UTF-8"),
    "a NUL in a row": (GOOD.replace(b"Lee,Acme", b"L\x00e,Acme", 1), 200, 19),
    "a NUL in the header": (GOOD.replace(b"Index", b"In\x00dex"), 415, "NUL"),
    "a bare CR in a row": (GOOD.replace(b"Lee,Acme", b"L\re,Acme", 1), 200, 19),
    "a bare CR in the header": (GOOD.replace(b"Index,", b"Index\r,"), 422, "carriage return"),
    "CR line ends only": (GOOD.replace(b"\n", b"\r"), 422, "carriage return"),
    "a PNG whose first line decodes": (PNG, 415, "not a CSV"),
    "a cut-off gzip file": (gzip.compress(GOOD)[:len(gzip.compress(GOOD)) // 2], 422, "gzip file is cut off"),
    "a damaged gzip file": (gzip.compress(GOOD)[:20] + b"\xff" * 200, 422, "gzip file is damaged"),
    "nothing at all": (b"", 422, "empty"),
    "only a header": (HEADER.encode() + b"\n", 200, 0),
    "one line, no line break": (HEADER.encode(), 200, 0),
}


@pytest.mark.parametrize("name", CORPUS)
async def test_a_hostile_file_gets_an_answer_from_preview_and_import_by_path_and_upload(
        client, config, db, name):
    data, status, expected = CORPUS[name]
    (config.import_dir / "h.csv").write_bytes(data)
    answers = [await client.post("/import/preview", json={"path": "h.csv"}),
               await client.post("/import/preview", data=form(data))]
    if status != 200:
        answers += [await client.post("/import", json={"path": "h.csv"}),
                    await client.post("/import", data=form(data))]
    for resp in answers:
        body = await resp.json()
        assert resp.status == status, (resp.url, body)
        if status != 200:
            assert expected in body["error"], body
    if status == 200:
        job = await imported(client, "h.csv")
        assert (job["status"], job["inserted"]) == ("completed", expected), job
    # Only the preview that worked keeps its upload; a refused request leaves nothing behind.
    assert await db.value("SELECT count(*) FROM uploads") == (1 if status == 200 else 0)
    assert len(list((config.import_dir / "uploads").iterdir())) == (1 if status == 200 else 0)


async def test_a_cut_off_gzip_upload_is_422_by_its_upload_id_and_stays_an_upload(client, config, db):
    data = gzip.compress(GOOD)[:len(gzip.compress(GOOD)) // 2]
    url = await create(client, len(data), "cut.csv.gz")
    assert (await patch(client, url, 0, data)).status == 204
    upload = url.rsplit("/", 1)[1]
    for route in ("/import/preview", "/import"):
        resp = await client.post(route, json={"upload": upload})
        assert resp.status == 422, await resp.text()
        assert "gzip file is cut off" in (await resp.json())["error"]
    assert await db.value("SELECT count(*) FROM import_jobs") == 0


async def test_a_gzip_file_cut_off_past_the_sample_fails_its_job_in_words(client, config, db):
    data = "\n".join([HEADER] + [row(i, f"G{i}", about=f"{i} " * 400) for i in range(1, 4001)]) + "\n"
    packed = gzip.compress(data.encode())
    (config.import_dir / "cut.csv.gz").write_bytes(packed[:len(packed) * 3 // 4])
    job = await imported(client, "cut.csv.gz")
    assert job["status"] == "failed", job
    assert "gzip file is cut off" in job["error"] and "internal error" not in job["error"]
    assert job["inserted"] > 0  # what was committed stays
