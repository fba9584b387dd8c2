"""Helpers for tests that import files through the real engine."""
from __future__ import annotations

import asyncio
import csv
import itertools
import signal
import subprocess
import time
from pathlib import Path

from aiohttp import web

from server.generate import generate
from server.importer import jobs
from server.keys import pool_key, runner_key

HEADER = "Index,Customer Id,First Name,Last Name,Company,City,Country,Phone 1,Phone 2,Email,Subscription Date,Website,About Customer"
TERMINAL = ("completed", "failed", "cancelled")


def row(index: int, customer_id: str, first: str = "Ann", *, company: str = "Acme",
        date: str = "2021-05-06", about: str = "Likes tea") -> str:
    return (f"{index},{customer_id},{first},Lee,{company},Oslo,Norway,+47 1234,,"
            f"{first.lower()}@example.com,{date},https://example.com,{about}")


def write_csv(path: Path, lines: list[str], *, newline: str = "\n", bom: bool = False) -> Path:
    data = newline.join(lines) + newline
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data.encode("utf-8"))
    return path


async def import_file(app: web.Application, path: Path, timeout: float = 60, options: dict | None = None) -> dict:
    """Queue a job for `path`, let the app's runner run it, return the finished job."""
    job = await jobs.create(app[pool_key], filename=path.name, path=path, bytes_total=path.stat().st_size,
                            options=options)
    app[runner_key].wake()
    return await wait_for_status(app, job["id"], TERMINAL, timeout)


async def wait_for_status(app: web.Application, job_id: int, statuses, timeout: float = 60) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        job = await jobs.get(app[pool_key], job_id)
        if job["status"] in statuses:
            return job
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"job {job_id} is still {job['status']} after {timeout}s: {job}")
        await asyncio.sleep(0.05)


async def wait_for_the_import_to_wait_on_a_lock(db, what: str, timeout: float = 20) -> None:
    """Until an import connection of this database waits for a lock (one the test holds)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await db.value("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                             "AND application_name LIKE 'csv-import job %%' AND wait_event_type = 'Lock'"):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the import never waited for {what}")
        await asyncio.sleep(0.05)


async def import_while_held(app: web.Application, db, path: Path, statement: str, what: str) -> dict:
    """Import `path` while the test's transaction, which ran `statement`, holds its row locks:
    it commits once the import waits for one of them. The finished job."""
    async with db.pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("BEGIN")
        await cur.execute(statement)
        job = await jobs.create(app[pool_key], filename=path.name, path=path, bytes_total=path.stat().st_size)
        app[runner_key].wake()
        await wait_for_the_import_to_wait_on_a_lock(db, what)
        await cur.execute("COMMIT")
    return await wait_for_status(app, job["id"], TERMINAL)


LAST_JOB = "SELECT import_job_json(j) FROM import_jobs j ORDER BY id DESC LIMIT 1"


async def kill_past(db, proc: subprocess.Popen, percent: float, timeout: float = 120) -> dict:
    """SIGKILL an importing process once its job is past `percent` of the file; the job as last seen."""
    deadline = time.monotonic() + timeout
    while (job := await db.value(LAST_JOB)) is None or job["percent"] < percent:
        assert proc.poll() is None and time.monotonic() < deadline, f"the import ended before {percent}%"
        await asyncio.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    return job


def write_messy_file(path: Path, *, seed: int, repeats: int, bad_rows: int, last: tuple[str, ...] = ()) -> Path:
    """12,000 generated rows, then the ids of the first `repeats` again (far from their first
    batch), `bad_rows` rows without an id, and the `last` lines: every counter moves."""
    generate(path, 12_000, seed=seed, about_bytes=300)
    with open(path, newline="", encoding="utf-8") as f:
        firsts = [fields[1] for fields in itertools.islice(csv.reader(f), 1, repeats + 1)]
    with open(path, "a", encoding="utf-8") as f:
        for i, customer_id in enumerate(firsts):
            f.write(row(90_000 + i, customer_id, f"Again{i}") + "\n")
        f.write("1,,no id,x,x,x,x,x,x,x,2020-01-01,x,x\n" * bad_rows)
        f.writelines(line + "\n" for line in last)
    return path
