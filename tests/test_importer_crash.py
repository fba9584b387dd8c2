"""A crash at any instant, then a restart, ends with exactly the table of a clean run.

The runs have two pipelines over ranges of about 1 MB (the file has several);
the last restart has one: the range plan, kept with the job, is the same for any
number of workers.
"""
import asyncio
import random
import signal
import time

import pytest

from tests.importing import row, write_messy_file
from tests.processes import cli, server_env

# Everything a clean run decides about a customer; ids and timestamps are the database's.
TABLE_CHECKSUM = """
    SELECT count(*), md5(string_agg(concat_ws('|', customer_id, first_name, last_name, company, city,
        country, phone_1, phone_2, email, subscription_date, website, about,
        updated_manually_at IS NOT NULL), E'\\n' ORDER BY customer_id))
    FROM customers
"""
REJECTS = "SELECT line_no, byte_offset, reason FROM import_rejects ORDER BY line_no"
COUNTERS = ("status", "inserted", "updated", "skipped_manual", "rejected", "rows_done", "bytes_done")


@pytest.fixture
def messy_file(tmp_path):
    """Generated rows, then repeats of some ids and a few bad rows, so every counter moves."""
    return write_messy_file(tmp_path / "crash.csv", seed=7, repeats=399, bad_rows=5,
                            last=(row(99_999, "HAND-EDITED", "FromFile"),))


async def _reset(db) -> None:
    await db.all("TRUNCATE customers, import_jobs, import_ranges, import_seen, import_rejects")
    await db.all("INSERT INTO customers (customer_id, first_name, updated_manually_at) "
                 "VALUES ('HAND-EDITED', 'ByHand', now())")


async def _outcome(db) -> tuple:
    job = await db.value("SELECT import_job_json(j) FROM import_jobs j ORDER BY id DESC LIMIT 1")
    return ({k: job[k] for k in COUNTERS}, await db.one(TABLE_CHECKSUM), await db.all(REJECTS))


def _run_to_end(env) -> tuple[int, str]:
    proc = cli("import", env["CSV"], "--no-progress", env=env)
    _, err = proc.communicate(timeout=240)
    return proc.returncode, err


@pytest.mark.slow
async def test_sigkill_at_random_moments_then_restart_gives_the_clean_result(db, db_url, messy_file):
    env = server_env(DATABASE_URL=db_url, IMPORT_BATCH_BYTES=str(96 * 1024), CSV=str(messy_file),
                     IMPORT_WORKERS="2", IMPORT_RANGE_BYTES=str(1024 * 1024))
    await _reset(db)
    code, err = _run_to_end(env)
    assert code == 0, err
    clean = await _outcome(db)
    assert clean[0]["status"] == "completed"
    assert clean[0]["skipped_manual"] == 1 and clean[0]["updated"] >= 399 and clean[0]["rejected"] == 5

    await _reset(db)
    seed = random.randrange(1 << 30)
    # Four moments, at least ten percent of the file apart, each past the last kill.
    moments = [5 + 20 * i + random.Random(seed + i).uniform(0, 10) for i in range(4)]
    killed_at = [0]
    for percent in moments:
        proc = cli("import", str(messy_file), "--no-progress", env=env)
        done = await _wait_for_progress(db, percent, killed_at[-1], proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed_at.append(done)
    # Restart: the same command finds the orphaned job and resumes it from its checkpoint.
    for _ in range(20):
        code, err = _run_to_end({**env, "IMPORT_WORKERS": "1"})
        if code != 2:  # 2: the dead process's lock was not yet released; try again
            break
        time.sleep(0.2)
    assert code == 0, err
    interrupted = await _outcome(db)
    assert await db.value("SELECT count(*) FROM import_jobs") == 1, "restarts resume, not restart"
    assert await db.value("SELECT count(*) FROM import_ranges WHERE done") >= 4
    assert interrupted == clean, f"seed {seed}, killed at bytes {killed_at[1:]}"
    print(f"killed at bytes {killed_at[1:]} of {messy_file.stat().st_size}; seed {seed}")


async def _wait_for_progress(db, percent: float, past_byte: int, proc) -> int:
    """Wait until this run has committed beyond `past_byte` and reached `percent` of the file."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = await db.value("SELECT import_job_json(j) FROM import_jobs j ORDER BY id DESC LIMIT 1")
        if job and job["percent"] >= percent and job["bytes_done"] > past_byte:
            return job["bytes_done"]
        if proc.poll() is not None:
            raise AssertionError(f"the import ended before {percent}%: {proc.stderr.read()[-2000:]}")
        await asyncio.sleep(0.01)
    raise AssertionError(f"the import never reached {percent}%")
