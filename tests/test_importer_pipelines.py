"""Pipelines over ranges of one file: the outcome of one reader from the top, whatever the order."""
import dataclasses

import psycopg2
import pytest

from server.importer import jobs
from server.importer.parse import parse_batch, read_header
from server.importer.ranges import count_lines, plan_cuts
from server.importer.writer import prepare_session, write_batch

from tests.importing import HEADER, import_file, row, write_csv

TABLE = "SELECT customer_id, first_name, about FROM customers ORDER BY customer_id"


@pytest.fixture(params=[1, 2], ids=["1-worker", "2-workers"])
def config(config, request):
    # Ranges as small as allowed, so that a test file of a few hundred KB has several.
    return dataclasses.replace(config, import_workers=request.param, range_bytes=64 * 1024)


def _file(path, *, later_first: str = "Late"):
    """About 400 KB: U1 at the top and again near the end, quoted line breaks all through."""
    lines = [HEADER, row(1, "U1", "Early", about="first")]
    lines += [row(i, f"C{i}", f"N{i}", about=f'"a note\nover two lines, ""quoted"" {i}"' if i % 3 else "x" * 300)
              for i in range(2, 2000)]
    lines.append(row(2000, "U1", later_first, about="last"))
    lines += [row(i, f"C{i}", f"M{i}") for i in range(2001, 2100)]
    return write_csv(path, lines)


async def test_an_id_in_two_ranges_ends_with_the_later_lines_values(client, db, tmp_path, config):
    path = _file(tmp_path / "a.csv")
    data = path.read_bytes()
    later_line = data[:data.index(b"\n2000,U1,")].count(b"\n") + 2
    job = await import_file(client.app, path)
    assert job["status"] == "completed", job
    assert (job["inserted"], job["updated"], job["rejected"]) == (2098, 1, 0)
    assert await db.one("SELECT first_name, about, import_line FROM customers WHERE customer_id = 'U1'") == \
        ("Late", "last", later_line)
    ranges = await db.value("SELECT count(*) FROM import_ranges WHERE job_id = %(id)s AND done", {"id": job["id"]})
    assert ranges >= config.import_workers
    # Line breaks inside quotes came through whole, wherever the ranges were cut.
    assert await db.value("SELECT about FROM customers WHERE customer_id = 'C4'") == \
        'a note\nover two lines, "quoted" 4'


async def test_the_later_line_wins_when_its_range_commits_first(db, db_url, tmp_path, config):
    """Two ranges written in the reverse order: the earlier line finds the later one and leaves it."""
    path = _file(tmp_path / "b.csv")
    header = read_header(path, config.max_record_bytes, None)
    size = path.stat().st_size
    cuts = plan_cuts(path, header, header.data_offset, size, 2, config.max_record_bytes)
    assert len(cuts) == 1
    edges = [header.data_offset, cuts[0], size]
    job_id = await db.value("INSERT INTO import_jobs (filename, path, bytes_total, status, data_offset, bytes_done, "
                            "line_no, columns) VALUES ('b.csv', %(path)s, %(size)s, 'running', %(start)s, "
                            "%(start)s, 2, %(columns)s) RETURNING id",
                            {"path": str(path), "size": size, "start": header.data_offset,
                             "columns": list(header.columns)})
    conn = psycopg2.connect(db_url)
    try:
        firsts = [header.data_line + count_lines(path, header.data_offset, a) for a in edges[:-1]]
        jobs.add_ranges(conn, job_id, [(a, b, line, a, line) for a, b, line in zip(edges, edges[1:], firsts)])
        prepare_session(conn, config.batch_bytes)
        for start, end, line in reversed(list(zip(edges, edges[1:], firsts))):
            offset = start
            while True:
                batch = parse_batch(path, header, offset, line, batch_bytes=1 << 24, max_record_bytes=1 << 20,
                                    job_id=job_id, file_size=size, stop_offset=end)
                written = write_batch(conn, job_id, "test", batch, header.present, 10, 65536, range_start=start)
                if batch.eof:
                    break
                offset, line = batch.end_offset, batch.end_line
    finally:
        conn.close()
    assert written.status == "completed"
    assert (written.job["inserted"], written.job["updated"]) == (2098, 1)
    assert await db.one("SELECT first_name, about FROM customers WHERE customer_id = 'U1'") == ("Late", "last")


async def test_a_duplicate_with_the_same_values_in_another_range_counts_unchanged(client, db, tmp_path, config):
    path = tmp_path / "c.csv"
    lines = [HEADER, row(1, "U1", "Same")] + [row(i, f"C{i}", about="y" * 200) for i in range(2, 2000)]
    lines.append(row(1, "U1", "Same"))
    job = await import_file(client.app, write_csv(path, lines))
    assert (job["inserted"], job["updated"], job["unchanged"]) == (1999, 0, 1)
