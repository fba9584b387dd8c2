"""What must not wedge, leak or stop an import: big headers, huge ids, deleted files,
a cancel racing a batch, a stop while a batch parses, a parse worker killed."""
import asyncio
import os
import signal
import struct
import sys
import dataclasses
import threading
import time
from concurrent.futures.process import BrokenProcessPool

import pytest

from server.app import create_app
from server.generate import generate
from server.importer import jobs
from server.importer.engine import run_job
from server.keys import pool_key, runner_key
from tests.importing import HEADER, TERMINAL, import_file, row, wait_for_status, \
    wait_for_the_import_to_wait_on_a_lock, write_csv
from tests.test_importer_control import start, wait_for_bytes, wait_until_stopped
from tests.test_importer_parsing import STRAY
from tests.test_importer_crash import _outcome, _reset, messy_file  # noqa: F401 (a fixture)


async def test_a_header_of_many_long_unknown_names_imports_and_the_next_import_can_start(client, db, tmp_path):
    names = [f"Unknown column number {i} " + "x" * 150 for i in range(50)]
    path = write_csv(tmp_path / "wide.csv", [HEADER + "," + ",".join(names)]
                     + [row(i, f"W{i}") + "," * 50 for i in range(10)])
    job = await import_file(client.app, path)
    assert (job["status"], job["inserted"]) == ("completed", 10), job
    assert len(job["unknown_columns"]) == 50 and all(len(n) <= 100 for n in job["unknown_columns"])
    assert (await import_file(client.app, write_csv(tmp_path / "b.csv", [HEADER, row(1, "B1")])))["status"] \
        == "completed"


async def test_job_ids_past_2_to_the_31_still_import(client, db, tmp_path):
    await db.all("ALTER TABLE import_jobs ALTER COLUMN id RESTART WITH 3000000000")
    job = await import_file(client.app, write_csv(tmp_path / "a.csv", [HEADER, row(1, "Z1")]))
    assert job["id"] == 3_000_000_000 and job["status"] == "completed", job


async def test_a_file_deleted_mid_import_fails_with_its_name_not_the_servers_path(client, db, tmp_path):
    path = tmp_path / "gone.csv"
    generate(path, 8000, seed=5, about_bytes=300)
    job = await start(client.app, path)
    await wait_for_bytes(client.app, job["id"], 50_000)
    path.unlink()
    failed = await wait_for_status(client.app, job["id"], TERMINAL)
    assert failed["status"] == "failed"
    assert "gone.csv" in failed["error"] and str(tmp_path) not in failed["error"], failed["error"]


async def test_after_a_cancel_answers_the_batch_in_flight_does_not_commit(client, db, tmp_path):
    path = tmp_path / "c.csv"
    generate(path, 8000, seed=3, about_bytes=300)
    job = await start(client.app, path)
    await wait_for_bytes(client.app, job["id"], 50_000)
    async with db.pool.acquire() as conn, conn.cursor() as cur:
        # A customer the next batch would insert, held uncommitted: the batch waits on it.
        await cur.execute("BEGIN")
        await cur.execute("LOCK TABLE customers IN SHARE MODE")
        await wait_for_the_import_to_wait_on_a_lock(db, "the customers table")
        resp = await client.post(f"/import/jobs/{job['id']}/cancel")
        assert resp.status == 200
        answered = await resp.json()
        await cur.execute("COMMIT")
    final = await wait_until_stopped(client.app, job["id"])
    counters = ("status", "inserted", "updated", "rejected", "rows_done", "bytes_done", "line_no")
    assert {k: final[k] for k in counters} == {k: answered[k] for k in counters}
    assert await db.value("SELECT count(*) FROM customers") == answered["inserted"]


async def start_and_wait_for_a_worker(app, path) -> dict:
    """A job started on `path`, once a process has claimed it (its first batch is being parsed)."""
    job = await start(app, path)
    await wait_for_status(app, job["id"], ("running",))
    for _ in range(500):
        if (await jobs.get(app[pool_key], job["id"]))["worker"]:
            return job
        await asyncio.sleep(0.02)
    raise AssertionError(f"no process claimed job {job['id']}")


@pytest.mark.slow
async def test_a_pause_lands_while_a_batch_is_still_being_parsed(client, db, tmp_path):
    runner = client.app[runner_key]
    # The parse worker is busy for a long time: the first batch cannot be parsed before it is done.
    busy = runner._worker_processes().submit(time.sleep, 30)
    path = write_csv(tmp_path / "p.csv", [HEADER] + [row(i, f"P{i}") for i in range(100)])
    job = await start_and_wait_for_a_worker(client.app, path)
    await jobs.control(client.app[pool_key], job["id"], "pause")
    started = time.monotonic()
    stopped = await wait_until_stopped(client.app, job["id"])
    assert stopped["status"] == "paused" and time.monotonic() - started < 10
    assert not busy.done()


@pytest.mark.slow
async def test_a_cancel_lands_inside_one_big_batch_of_stray_quote_lines(client_as, config, db, tmp_path):
    """One batch holds the whole file (its bounds in bytes, rows and rejects all raised), so
    the job sits in one batch for seconds: the cancel must not wait for it (stray quotes
    once made such a batch take hours)."""
    app = create_app(dataclasses.replace(config, batch_bytes=256 * 1024**2, batch_rows=10**7,
                                         batch_rejects=10**7, reject_limit=10**7))
    client = await client_as("admin", app=app)
    path = tmp_path / "stray.csv"
    with path.open("w") as f:
        f.write(HEADER + "\n")
        f.writelines(STRAY.format(i=i) + "\n" for i in range(1_500_000))  # 100 MB: seconds to parse
    job = await start_and_wait_for_a_worker(client.app, path)
    await asyncio.sleep(0.5)  # the worker is well into the batch
    await jobs.control(client.app[pool_key], job["id"], "cancel")
    started = time.monotonic()
    stopped = await wait_until_stopped(client.app, job["id"])
    # IMPORT_CONTROL_POLL_SECONDS (0.5) and a worker cleared, not the batch's end.
    assert stopped["status"] == "cancelled" and time.monotonic() - started < 3, stopped
    assert (stopped["rows_done"], stopped["rejected"]) == (0, 0)  # the batch in flight never committed
    assert await db.value("SELECT count(*) FROM import_rejects WHERE job_id = %s", (job["id"],)) == 0


@pytest.mark.slow
async def test_a_killed_parse_worker_is_a_transient_stop(client, db, messy_file):
    await _reset(db)
    job = await import_file(client.app, messy_file, timeout=120)
    clean = await _outcome(db)
    assert clean[0]["status"] == "completed" and job["rejected"] == 5

    await _reset(db)
    runner = client.app[runner_key]
    job = await start(client.app, messy_file)
    await wait_for_bytes(client.app, job["id"], messy_file.stat().st_size // 3)
    pid = list(runner._worker_processes()._processes)[0]  # one of the pipelines' workers
    os.kill(pid, signal.SIGKILL)
    done = await wait_for_status(client.app, job["id"], TERMINAL, timeout=120)
    assert done["status"] == "completed", done
    assert await _outcome(db) == clean


def _die_halfway_through_a_reply() -> None:
    """In the parse worker: begin sending a batch-sized result, then die as kill -9 would.

    What the OOM killer does to a worker that is writing a parsed batch back: the pool's
    result pipe holds the start of a message whose rest never comes.
    """
    frame = sys._getframe()
    while frame.f_code.co_name != "_process_worker":  # concurrent.futures.process's worker loop
        frame = frame.f_back
    results = frame.f_locals["result_queue"]
    os.write(results._writer.fileno(), struct.pack("!i", 1 << 20) + b"\0" * 4096)
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.slow
async def test_a_parse_worker_killed_halfway_through_a_reply_is_a_transient_stop(client_as, config, db, messy_file):
    # One pipeline, so one parse process: the dying task waits in its queue behind the job's
    # batch in flight, and the job's next batch meets the broken pool. With two, the job could
    # end before an idle process took the task, and nothing would be tested.
    client = await client_as("admin", app=create_app(dataclasses.replace(config, import_workers=1)))
    await _reset(db)
    runner = client.app[runner_key]
    job = await start(client.app, messy_file)
    await wait_for_bytes(client.app, job["id"], messy_file.stat().st_size // 3)
    dying = runner._worker_processes().submit(_die_halfway_through_a_reply)
    done = await wait_for_status(client.app, job["id"], TERMINAL, timeout=60)
    assert done["status"] == "completed" and done["rejected"] == 5, done
    with pytest.raises(BrokenProcessPool):
        dying.result(timeout=0)


async def test_a_job_that_cannot_connect_leaves_no_thread_behind(config):
    before = {t.ident for t in threading.enumerate()}
    try:
        await run_job(1, config=config, database_url="postgresql://nobody@127.0.0.1:1/none",
                      worker="w", processes=None)
    except Exception:
        pass
    await asyncio.sleep(0.2)
    assert not [t.name for t in threading.enumerate() if t.ident not in before and t.name.startswith("import-job")]


async def test_a_runner_that_does_not_run_the_job_opens_no_connection_per_poll(client, db, tmp_path):
    held = await db.value("INSERT INTO import_jobs (filename, path, status, worker) "
                          "VALUES ('held.csv', '/held.csv', 'running', 'elsewhere:1') RETURNING id")
    sessions = "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
    async with db.pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("SELECT pg_advisory_lock(7342, %s::int)", (held,))
        await cur.execute("SELECT pg_stat_force_next_flush()")
        await asyncio.sleep(0.2)
        before = await db.value(sessions)
        for _ in range(6):
            client.app[runner_key].wake()
            await asyncio.sleep(0.3)
        await db.value("SELECT pg_stat_clear_snapshot()")
        after = await db.value(sessions)
        await cur.execute("SELECT pg_advisory_unlock(7342, %s::int)", (held,))
    assert after - before <= 1, (before, after)


def test_the_engines_bounds_are_read_from_the_environment_and_checked():
    import pytest

    from server.config import Config, ConfigError

    config = Config.from_env({"IMPORT_BATCH_ROWS": "5000", "IMPORT_BATCH_REJECTS": "7",
                              "IMPORT_CONTROL_POLL_SECONDS": "0.25"})
    assert (config.batch_rows, config.batch_rejects, config.control_poll_seconds) == (5000, 7, 0.25)
    for name, bad in (("IMPORT_BATCH_ROWS", "10"), ("IMPORT_BATCH_REJECTS", "0"),
                      ("IMPORT_CONTROL_POLL_SECONDS", "-1")):
        with pytest.raises(ConfigError, match=name):
            Config.from_env({name: bad})


def pool_threads() -> set[threading.Thread]:
    """The threads that manage process pools (CPython's ProcessPoolExecutor)."""
    return {t for t in threading.enumerate() if type(t).__name__ == "_ExecutorManagerThread"}


async def test_a_stopped_runner_has_ended_its_parse_worker_pool(client, tmp_path):
    """Stopped means ended: CPython 3.11's exit handler races a pool still shutting down
    and then prints "OSError: Bad file descriptor" after the CLI's last line."""
    before = pool_threads()
    job = await import_file(client.app, write_csv(tmp_path / "a.csv", [HEADER, row(1, "Q1")]))
    assert job["status"] == "completed"
    assert pool_threads() - before, "the import ran in a worker pool"
    await client.app[runner_key].stop()
    assert not {t for t in pool_threads() - before if t.is_alive()}
