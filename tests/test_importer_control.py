"""Pause, resume, cancel and resume-after-change, obeyed by the running engine."""
import asyncio

import pytest

from server.generate import generate
from server.importer import jobs
from server.keys import pool_key, runner_key
from server.sqlfiles import queries
from tests.importing import HEADER, row, wait_for_status, wait_for_the_import_to_wait_on_a_lock, write_csv

JOBS_SQL = queries("jobs")


async def start(app, path):
    job = await jobs.create(app[pool_key], filename=path.name, path=path, bytes_total=path.stat().st_size)
    app[runner_key].wake()
    return job


async def wait_for_bytes(app, job_id, at_least: int) -> dict:
    for _ in range(2000):
        job = await jobs.get(app[pool_key], job_id)
        if job["bytes_done"] >= at_least:
            return job
        await asyncio.sleep(0.005)
    raise AssertionError(f"job {job_id} never passed byte {at_least}")


async def wait_until_stopped(app, job_id) -> dict:
    """Paused in the database is not yet stopped: the engine notices, and its batch in flight rolls back."""
    for _ in range(1000):
        job = await jobs.get(app[pool_key], job_id)
        if job["worker"] is None:
            return job
        await asyncio.sleep(0.01)
    raise AssertionError(f"job {job_id} still has a worker")


async def test_a_file_growing_during_the_import_fails_it(client, db, tmp_path):
    path = tmp_path / "grow.csv"
    generate(path, 8000, seed=5, about_bytes=300)
    job = await start(client.app, path)
    await wait_for_bytes(client.app, job["id"], 50_000)
    with open(path, "a", encoding="utf-8") as f:
        f.write(row(1, "LATE") + "\n")
    failed = await wait_for_status(client.app, job["id"], ("failed", "completed"))
    assert failed["status"] == "failed"
    assert "changed while it was being imported" in failed["error"]
    assert failed["inserted"] == await db.value("SELECT count(*) FROM customers") < 8000


@pytest.mark.slow
async def test_pause_stops_within_a_batch_and_resume_finishes_exactly(client, db, tmp_path):
    path = tmp_path / "p.csv"
    generate(path, 8000, seed=2, about_bytes=300)
    job = await start(client.app, path)
    await wait_for_bytes(client.app, job["id"], 100_000)
    await jobs.control(client.app[pool_key], job["id"], "pause")
    paused = await wait_for_status(client.app, job["id"], ("paused",))
    await asyncio.sleep(0.5)  # one batch at most may still commit; then nothing moves
    settled = await jobs.get(client.app[pool_key], job["id"])
    assert settled["status"] == "paused" and settled["worker"] is None
    assert settled["bytes_done"] < path.stat().st_size
    await asyncio.sleep(0.5)
    assert (await jobs.get(client.app[pool_key], job["id"]))["bytes_done"] == settled["bytes_done"]
    assert paused["rows_done"] <= settled["rows_done"] == await db.value("SELECT count(*) FROM customers")

    await jobs.control(client.app[pool_key], job["id"], "resume")
    client.app[runner_key].wake()
    done = await wait_for_status(client.app, job["id"], ("completed",))
    assert done["inserted"] == 8000 == await db.value("SELECT count(*) FROM customers")


async def test_a_cancelled_job_keeps_what_it_committed(client, db, tmp_path):
    path = tmp_path / "c.csv"
    generate(path, 8000, seed=3, about_bytes=300)
    job = await start(client.app, path)
    await wait_for_bytes(client.app, job["id"], 100_000)
    await jobs.control(client.app[pool_key], job["id"], "cancel")
    await asyncio.sleep(0.5)
    cancelled = await jobs.get(client.app[pool_key], job["id"])
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"] is not None
    assert 0 < cancelled["inserted"] < 8000
    assert cancelled["inserted"] == await db.value("SELECT count(*) FROM customers")


async def test_a_file_changed_while_paused_fails_the_job_with_a_message(client, db, tmp_path):
    path = tmp_path / "ch.csv"
    generate(path, 8000, seed=4, about_bytes=300)
    job = await start(client.app, path)
    await wait_for_bytes(client.app, job["id"], 100_000)
    await jobs.control(client.app[pool_key], job["id"], "pause")
    await wait_for_status(client.app, job["id"], ("paused",))
    await wait_until_stopped(client.app, job["id"])
    with open(path, "a", encoding="utf-8") as f:
        f.write(row(1, "LATE") + "\n")
    await jobs.control(client.app[pool_key], job["id"], "resume")
    client.app[runner_key].wake()
    failed = await wait_for_status(client.app, job["id"], ("failed", "completed"))
    assert failed["status"] == "failed"
    assert "changed since the import started" in failed["error"]


async def test_a_stray_quote_costs_one_line_and_long_records_still_import(client, db, tmp_path, app):
    long_about = "word " * 40_000  # 200 KB: longer than a test batch, shorter than the record limit
    lines = [HEADER, row(1, "S1"), '2,S2,"Ann,Lee,Acme,Oslo,Norway,1,,a@b.c,2021-01-01,w,x']
    lines += [row(i, f"S{i}") for i in range(3, 2000)]
    lines += [row(2000, "LONG", about=f'"{long_about.strip()}"')]
    job = await start(client.app, write_csv(tmp_path / "q.csv", lines))
    job = await wait_for_status(client.app, job["id"], ("completed", "failed"), timeout=120)
    assert job["status"] == "completed", job
    assert job["rejected"] == 1 and job["inserted"] == 1999
    reason = await db.value("SELECT reason FROM import_rejects")
    assert "a quote on this line does not close" in reason
    assert len(await db.value("SELECT about FROM customers WHERE customer_id = 'LONG'")) == len(long_about.strip())


async def test_an_unterminated_quote_at_the_end_is_rejected(client, db, tmp_path):
    path = tmp_path / "u.csv"
    path.write_text(HEADER + "\n" + row(1, "U1") + '\n2,U2,"Ann,Lee')
    job = await start(client.app, path)
    job = await wait_for_status(client.app, job["id"], ("completed", "failed"))
    assert (job["status"], job["inserted"], job["rejected"]) == ("completed", 1, 1)


async def test_pausing_or_cancelling_a_job_whose_process_died_shows_nobody_on_it(db):
    # Left 'running' by a process that died: nobody holds the job's lock, so no
    # commit of a runner will ever clear its worker.
    gone = await db.value("INSERT INTO import_jobs (filename, path, status, worker) "
                          "VALUES ('gone.csv', '/gone.csv', 'running', 'gone:1') RETURNING id")
    assert (await jobs.control(db.pool, gone, "pause"))["worker"] is None
    await jobs.control(db.pool, gone, "cancel")
    # A live runner holds the lock and clears the worker itself when it stops.
    alive = await db.value("INSERT INTO import_jobs (filename, path, status, worker) "
                           "VALUES ('alive.csv', '/alive.csv', 'running', 'alive:1') RETURNING id")
    async with db.pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("SELECT pg_advisory_lock(7342, %s::int)", (alive,))
        assert (await jobs.control(db.pool, alive, "cancel"))["worker"] == "alive:1"
        await cur.execute("SELECT pg_advisory_unlock(7342, %s::int)", (alive,))


@pytest.mark.slow
async def test_a_resume_before_the_paused_batch_commits_keeps_the_worker_shown(client, db, tmp_path):
    path = tmp_path / "r.csv"
    generate(path, 8000, seed=4, about_bytes=300)
    job = await start(client.app, path)
    await wait_for_bytes(client.app, job["id"], 100_000)
    async with db.pool.acquire() as conn, conn.cursor() as cur:
        # Hold the job's row: the engine's next batch cannot commit before us.
        await cur.execute("BEGIN")
        await cur.execute("SELECT 1 FROM import_jobs WHERE id = %s FOR UPDATE", (job["id"],))
        await wait_for_the_import_to_wait_on_a_lock(db, "the job's row")
        for action in ("pause", "resume"):
            allowed_from, to = jobs.TRANSITIONS[action]
            await cur.execute(JOBS_SQL["transition"], {"id": job["id"], "to": to, "from": list(allowed_from)})
        await cur.execute("COMMIT")
    # The batch in flight commits on a running job: it is still this process's.
    held_at = (await jobs.get(client.app[pool_key], job["id"]))["bytes_done"]
    moved = await wait_for_bytes(client.app, job["id"], held_at + 1)
    assert moved["status"] == "running" and moved["worker"] is not None
    assert (await wait_for_status(client.app, job["id"], ("completed",)))["rows_done"] == 8000


async def test_a_runner_that_claims_a_job_paused_meanwhile_clears_its_dead_worker(client, db):
    # The pause landed between the runner taking the job's lock and starting its
    # run, so it saw a live lock and kept the dead process's name.
    job_id = await db.value("INSERT INTO import_jobs (filename, path, status, worker) "
                            "VALUES ('gone.csv', '/gone.csv', 'paused', 'gone:1') RETURNING id")
    assert await client.app[runner_key].run(job_id) is None
    assert (await jobs.get(client.app[pool_key], job_id))["worker"] is None
