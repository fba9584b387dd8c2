"""Pipelines over ranges of one file: the outcome of one reader from the top, whatever the order."""
import asyncio
import dataclasses

import psycopg2
import pytest

from server.importer.parse import parse_batch, read_header
from server.importer.ranges import count_lines, plan_cuts
from server.importer.writer import prepare_session, write_batch

from tests.importing import HEADER, import_file, row, write_csv
from tests.waiting import eventually

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


@pytest.mark.parametrize("stored", [None, ("Late", "last")], ids=["new", "later-line-already-stored"])
async def test_the_later_line_wins_when_its_range_commits_first(db, db_url, tmp_path, config, stored):
    """Two ranges written in the reverse order: the earlier line finds the later one and leaves it,
    also when the later line changed nothing (the customer had its values before this job)."""
    if stored is not None:  # every value of the later line, as an earlier import left it
        await db.all("INSERT INTO customers (customer_id, first_name, last_name, company, city, country, phone_1, "
                     "email, subscription_date, website, about) VALUES ('U1', %s, 'Lee', 'Acme', 'Oslo', 'Norway', "
                     "'+47 1234', 'late@example.com', '2021-05-06', 'https://example.com', %s)", stored)
    job = await _two_ranges(db, _file(tmp_path / "b.csv"), config)
    conn = psycopg2.connect(db_url)
    try:
        prepare_session(conn, config.batch_bytes)
        for part in reversed(job.ranges):
            written = _write_range(conn, job, part)
    finally:
        conn.close()
    assert written.status == "completed"
    assert await db.one("SELECT first_name, about FROM customers WHERE customer_id = 'U1'") == ("Late", "last")
    # The recent rows of a finished job are the file's last rows, in file order, whichever range
    # committed last (here the first).
    recent = await db.value("SELECT recent FROM import_jobs WHERE id = %s", (job.id,))
    assert [r["customer_id"] for r in recent] == [f"C{i}" for i in range(2080, 2100)]
    if stored is None:
        assert (written.job["inserted"], written.job["updated"]) == (2098, 1)
    else:
        # Read from the top, both of U1's lines change it. Written in reverse, the later line found
        # its own values stored and changed nothing; the earlier found the later and left it. Which of
        # them counts as the change depends on the order (docs/design.md), never the table.
        assert (written.job["inserted"], written.job["updated"], written.job["unchanged"]) == (2097, 1, 1)


async def test_the_later_line_wins_when_an_earlier_line_is_written_while_it_waits(db, db_url, tmp_path, config):
    """The later line finds the customer as it was (its digest, from the import before), changes
    nothing, and waits for its checkpoint; meanwhile the earlier line's range writes the customer
    and commits. The later line's batch sees that under the job's lock, goes again, and puts its
    values back."""
    before = write_csv(tmp_path / "before.csv", [HEADER, row(2000, "U1", "Late", about="last")])
    header = read_header(before, config.max_record_bytes, None)
    [digest] = parse_batch(before, header, header.data_offset, 2, batch_bytes=1 << 20, max_record_bytes=1 << 20,
                           job_id=1, file_size=before.stat().st_size).digests
    await db.all("INSERT INTO customers (customer_id, first_name, last_name, company, city, country, phone_1, "
                 "email, subscription_date, website, about, import_digest) VALUES ('U1', 'Late', 'Lee', 'Acme', "
                 "'Oslo', 'Norway', '+47 1234', 'late@example.com', '2021-05-06', 'https://example.com', 'last', "
                 "%s)", (digest,))
    job = await _two_ranges(db, _file(tmp_path / "d.csv"), config)
    early, late = job.ranges
    later_conn, earlier_conn, holder = (psycopg2.connect(db_url) for _ in range(3))
    try:
        prepare_session(later_conn, config.batch_bytes)
        prepare_session(earlier_conn, config.batch_bytes)
        # A customer the later range brings, not yet committed by someone else: after its
        # look-up, the later range's batch waits on this one to copy its new customers.
        with holder.cursor() as cur:
            cur.execute("INSERT INTO customers (customer_id) VALUES ('C1999')")
        waiting = asyncio.create_task(asyncio.to_thread(_write_range, later_conn, job, late))
        await eventually(lambda: db.value("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                          "AND datname = current_database()"))
        await asyncio.to_thread(_write_range, earlier_conn, job, early)
        assert await db.value("SELECT first_name FROM customers WHERE customer_id = 'U1'") == "Early"
        holder.rollback()
        written = await waiting
    finally:
        for conn in (later_conn, earlier_conn, holder):
            conn.close()
    assert written.status == "completed"
    assert await db.one("SELECT first_name, about FROM customers WHERE customer_id = 'U1'") == ("Late", "last")
    assert (written.job["inserted"], written.job["updated"]) == (2097, 2)


@dataclasses.dataclass
class _Job:
    id: int
    path: object
    header: object
    size: int
    ranges: list  # (start, end, first line)


async def _two_ranges(db, path, config) -> _Job:
    """A running job for `path` with a plan of two ranges, as the engine would make it."""
    header = read_header(path, config.max_record_bytes, None)
    size = path.stat().st_size
    cuts = plan_cuts(path, header, header.data_offset, size, 2, config.max_record_bytes)
    assert len(cuts) == 1
    edges = [header.data_offset, cuts[0], size]
    job_id = await db.value("INSERT INTO import_jobs (filename, path, bytes_total, status, data_offset, bytes_done, "
                            "line_no, columns) VALUES (%(name)s, %(path)s, %(size)s, 'running', %(start)s, "
                            "%(start)s, 2, %(columns)s) RETURNING id",
                            {"name": path.name, "path": str(path), "size": size, "start": header.data_offset,
                             "columns": list(header.columns)})
    firsts = [header.data_line + count_lines(path, header.data_offset, a) for a in edges[:-1]]
    for a, b, line in zip(edges, edges[1:], firsts):
        await db.all("INSERT INTO import_ranges (job_id, start_offset, end_offset, first_line, done_offset, "
                     "done_line) VALUES (%s, %s, %s, %s, %s, %s)", (job_id, a, b, line, a, line))
    return _Job(job_id, path, header, size, list(zip(edges, edges[1:], firsts)))


def _write_range(conn, job: _Job, part):
    """Every batch of one range, in order; the last one's Written."""
    start, end, line = part
    offset = start
    while True:
        batch = parse_batch(job.path, job.header, offset, line, batch_bytes=1 << 24, max_record_bytes=1 << 20,
                            job_id=job.id, file_size=job.size, stop_offset=end)
        written = write_batch(conn, job.id, "test", batch, job.header.present, 10, 65536, range_start=start)
        if batch.eof:
            return written
        offset, line = batch.end_offset, batch.end_line


async def test_a_duplicate_with_the_same_values_in_another_range_counts_unchanged(client, db, tmp_path, config):
    path = tmp_path / "c.csv"
    lines = [HEADER, row(1, "U1", "Same")] + [row(i, f"C{i}", about="y" * 200) for i in range(2, 2000)]
    lines.append(row(1, "U1", "Same"))
    job = await import_file(client.app, write_csv(path, lines))
    assert (job["inserted"], job["updated"], job["unchanged"]) == (1999, 0, 1)
