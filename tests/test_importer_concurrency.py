"""At most one job is active, and one job has one runner: the database enforces both.

And a customer deleted by someone else while its batch is being written is
brought back by the file, the later writer.
"""
import asyncio

import psycopg2
import psycopg2.extensions
import pytest

from server.importer import jobs
from server.importer.header import read_header
from server.importer.parse import parse_batch
from server.importer.runner import JobRunner
from server.importer.writer import SQL as WRITER_SQL, prepare_session, write_batch
from server.keys import config_key, database_url_key, pool_key
from tests.importing import HEADER, import_while_held, row, write_csv


async def test_two_concurrent_starts_create_exactly_one_job(client, db, tmp_path):
    pool = client.app[pool_key]
    path = write_csv(tmp_path / "a.csv", [HEADER, row(1, "A1")])
    results = await asyncio.gather(
        *(jobs.create(pool, filename=path.name, path=path, bytes_total=1) for _ in range(5)),
        return_exceptions=True)
    created = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, jobs.JobActive)]
    assert len(created) == 1 and len(refused) == 4
    assert all(r.job["id"] == created[0]["id"] for r in refused)
    assert await db.value("SELECT count(*) FROM import_jobs") == 1


async def test_two_runners_racing_for_one_job_run_it_once(client, db, tmp_path):
    app = client.app
    lines = [HEADER] + [row(i, f"R{i}") for i in range(3000)]
    path = write_csv(tmp_path / "race.csv", lines)
    job = await jobs.create(app[pool_key], filename=path.name, path=path, bytes_total=path.stat().st_size)
    runners = [JobRunner(app[config_key], app[pool_key], app[database_url_key]) for _ in range(2)]
    for number, runner in enumerate(runners):
        runner.worker = f"test-runner-{number}"
    try:
        statuses = await asyncio.gather(*(runner.run(job["id"]) for runner in runners))
    finally:
        for runner in runners:
            await runner.stop()
    # The app's own runner may have won the race too; then both of ours stand aside.
    assert statuses.count("completed") <= 1 and statuses.count(None) >= 1
    final = await jobs.get(app[pool_key], job["id"])
    for _ in range(200):
        if final["status"] == "completed":
            break
        await asyncio.sleep(0.05)
        final = await jobs.get(app[pool_key], job["id"])
    assert (final["status"], final["inserted"], final["rows_done"]) == ("completed", 3000, 3000)
    assert await db.value("SELECT count(*) FROM customers") == 3000


@pytest.mark.parametrize(("action", "allowed_from"), [("pause", "running"), ("cancel", "paused")])
async def test_controls_are_state_changes_in_the_database(db, tmp_path, action, allowed_from):
    # No app here, so no runner to act on the job while the test moves it.
    job = await jobs.create(db.pool, filename="x.csv", path=tmp_path / "x.csv", bytes_total=1)
    await db.all("UPDATE import_jobs SET status = %s WHERE id = %s", (allowed_from, job["id"]))
    changed = await jobs.control(db.pool, job["id"], action)
    assert changed["status"] == {"pause": "paused", "cancel": "cancelled"}[action]
    with pytest.raises(jobs.TransitionNotAllowed):
        await jobs.control(db.pool, job["id"], "resume" if action == "cancel" else "pause")


OUTCOME = ("status", "inserted", "updated", "unchanged", "skipped_manual", "rows_done")
FILE = [HEADER, row(1, "D1", "New"), row(2, "D2", "New"), row(3, "D3", "New")]


async def _d1_and_d2_stored(db):
    """D1 and D2 with values other than the file's: its batch updates both."""
    await db.all("INSERT INTO customers (customer_id, first_name) VALUES ('D1', 'Old'), ('D2', 'Old')")


async def test_a_customer_deleted_while_its_update_waits_ends_with_the_files_values(client, db, tmp_path):
    # D2 is deleted (as the API would) in a transaction that commits only once the
    # import's update has read D2 and waits for its row: the update finds it gone.
    await _d1_and_d2_stored(db)
    path = write_csv(tmp_path / "a.csv", FILE)
    job = await import_while_held(client.app, db, path, "DELETE FROM customers WHERE customer_id = 'D2'",
                                  "the deleted D2")
    assert {k: job[k] for k in OUTCOME} == {"status": "completed", "inserted": 2, "updated": 1, "unchanged": 0,
                                            "skipped_manual": 0, "rows_done": 3}
    assert await db.all("SELECT customer_id, first_name FROM customers ORDER BY customer_id") == [
        ("D1", "New"), ("D2", "New"), ("D3", "New")]


class _DeleteAfterInsertFromStage(psycopg2.extensions.cursor):
    """The writer's cursor: once its insert_from_stage has run, D2 is deleted and committed
    on another connection, before its update_from_stage reads."""

    other: psycopg2.extensions.connection

    def execute(self, query, vars=None):
        super().execute(query, vars)
        if query == WRITER_SQL["insert_from_stage"] and not self.connection.deleted:
            with self.other.cursor() as cur:
                cur.execute("DELETE FROM customers WHERE customer_id = 'D2'")
            self.connection.deleted = True


class _Connection(psycopg2.extensions.connection):
    deleted = False


async def test_a_customer_deleted_between_the_writers_statements_ends_with_the_files_values(
        db, db_url, tmp_path, config):
    # No app, so no runner to take the job this test writes by hand.
    await _d1_and_d2_stored(db)
    path = write_csv(tmp_path / "a.csv", FILE)
    header = read_header(path, config.max_record_bytes, None)
    size = path.stat().st_size
    job_id = await db.value(
        "INSERT INTO import_jobs (filename, path, bytes_total, status, data_offset, bytes_done, line_no, columns) "
        "VALUES (%(name)s, %(path)s, %(size)s, 'running', %(start)s, %(start)s, 2, %(columns)s) RETURNING id",
        {"name": path.name, "path": str(path), "size": size, "start": header.data_offset,
         "columns": list(header.columns)})
    await db.all("INSERT INTO import_ranges (job_id, start_offset, end_offset, first_line, done_offset, done_line) "
                 "VALUES (%s, %s, %s, 2, %s, 2)", (job_id, header.data_offset, size, header.data_offset))
    batch = parse_batch(path, header, header.data_offset, 2, batch_bytes=1 << 20, max_record_bytes=1 << 20,
                        job_id=job_id, file_size=size)
    assert batch.eof and batch.ids == ["D1", "D2", "D3"]

    def write():
        conn = psycopg2.connect(db_url, connection_factory=_Connection)
        other = psycopg2.connect(db_url)
        other.autocommit = True
        try:
            prepare_session(conn, config.batch_bytes)
            _DeleteAfterInsertFromStage.other = other
            conn.cursor_factory = _DeleteAfterInsertFromStage
            written = write_batch(conn, job_id, "test", batch, header.present, 10, 65536,
                                  range_start=header.data_offset)
            return written, conn.deleted
        finally:
            conn.close()
            other.close()

    written, deleted = await asyncio.to_thread(write)
    assert deleted, "the batch went through the stage"
    assert {k: written.job[k] for k in OUTCOME} == {"status": "completed", "inserted": 2, "updated": 1,
                                                    "unchanged": 0, "skipped_manual": 0, "rows_done": 3}
    assert await db.all("SELECT customer_id, first_name FROM customers ORDER BY customer_id") == [
        ("D1", "New"), ("D2", "New"), ("D3", "New")]
