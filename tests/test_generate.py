"""Tests for the sample-CSV generator (no database needed)."""
import csv
import datetime
import statistics

from server.generate import HEADER, generate

COLUMNS = HEADER.rstrip("\n").split(",")


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    generate(a, 500, seed=7, about_bytes=300)
    generate(b, 500, seed=7, about_bytes=300)
    generate(c, 500, seed=8, about_bytes=300)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_csv_module_reads_it_back(tmp_path):
    out = tmp_path / "customers.csv"
    about_bytes = 400
    generate(out, 500, seed=3, about_bytes=about_bytes)
    data = out.read_bytes()
    assert not data.startswith(b"\xef\xbb\xbf") and b"\r" not in data
    header, *rows = read_rows(out)
    assert header == COLUMNS
    assert len(rows) == 500
    assert all(len(row) == 13 for row in rows)
    assert [row[0] for row in rows] == [str(i) for i in range(1, 501)]
    ids = [row[1] for row in rows]
    assert len(set(ids)) == 500
    assert all(len(i) == 15 and int(i, 16) >= 0 for i in ids)
    for row in rows:
        date = datetime.date.fromisoformat(row[10])
        assert datetime.date(2020, 1, 1) <= date <= datetime.date(2022, 12, 31)
    assert any("," in row[4] for row in rows)
    assert any(not (row[2] + row[3]).isascii() for row in rows)
    assert any("\n" in row[12] and '"' in row[12] for row in rows)
    lengths = [len(row[12].encode()) for row in rows]
    assert abs(statistics.mean(lengths) - about_bytes) < about_bytes * 0.05
    assert all(abs(n - about_bytes) <= about_bytes * 0.1 for n in lengths)
    assert all("@" in row[9] and row[11].startswith("http") for row in rows)


def test_about_bytes_zero_gives_empty_about(tmp_path):
    out = tmp_path / "empty.csv"
    generate(out, 200, about_bytes=0)
    rows = read_rows(out)[1:]
    assert len(rows) == 200
    assert all(row[12] == "" for row in rows)


def test_returned_count_is_file_size_and_write_is_atomic(tmp_path):
    out = tmp_path / "nested" / "dir" / "x.csv"
    seen = []
    written = generate(out, 25_000, about_bytes=50, progress=seen.append)
    assert written == out.stat().st_size
    assert seen and seen[-1] == 25_000 and seen == sorted(seen)
    assert [p.name for p in out.parent.iterdir()] == ["x.csv"]


def test_zero_rows_is_header_only(tmp_path):
    out = tmp_path / "h.csv"
    assert generate(out, 0) == len(HEADER.encode())
    assert out.read_text(encoding="utf-8") == HEADER


def test_interrupted_run_leaves_no_file(tmp_path):
    out = tmp_path / "killed.csv"

    def stop(rows_done):
        raise KeyboardInterrupt

    try:
        generate(out, 30_000, about_bytes=10, progress=stop)
    except KeyboardInterrupt:
        pass
    assert list(tmp_path.iterdir()) == []
