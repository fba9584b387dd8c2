"""Beyond one database server: the primary crashes in the middle of an import, the
synchronous standby is promoted, and the job completes on the new primary with the
table and counters of a clean run (the contract's "Databases" section)."""
from __future__ import annotations

import asyncio
import csv
import time

import aiopg
import psycopg2
import pytest
from aiohttp.test_utils import TestServer

import server.db  # noqa: F401  (installs server/multihost.py, as the app does)
from server.app import create_app
from server.config import Config
from server.generate import generate
from server.importer import jobs
from server.keys import pool_key, runner_key

# The operator ran 200,000 rows; 40,000 in 64 KB batches are about a hundred
# synchronous commits, enough to crash in the middle, and quick on a loaded 2-core host.
ROWS = 40_000


def expected_rows(path) -> set[tuple]:
    """What a clean run leaves: each Customer Id once (the last occurrence), values trimmed, '' as null."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = {r["Customer Id"]: r for r in csv.DictReader(f)}
    return {(cid, *(r[c].strip() or None for c in ("First Name", "Last Name", "Email", "City")))
            for cid, r in rows.items()}


async def job_when(pool, job_id: int, done, timeout: float) -> dict:
    """The job once `done(job)`; a database that is away meanwhile is asked again."""
    deadline = time.monotonic() + timeout
    job: dict | None = None
    while True:
        try:
            job = await jobs.get(pool, job_id)
            if done(job):
                return job
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            pass  # the primary is gone and the standby not yet promoted
        assert time.monotonic() < deadline, f"still not there after {timeout} s: {job}"
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_the_primary_crashes_mid_import_and_the_job_completes_on_the_promoted_standby(
        replication, tmp_path):
    pair = await replication.ready()
    database = await asyncio.to_thread(pair.new_database)
    path = tmp_path / "imports" / "customers.csv"
    await asyncio.to_thread(generate, path, ROWS, seed=26, about_bytes=100)
    config = Config(database_url=pair.url(database), data_dir=tmp_path / "var", import_dir=path.parent,
                    batch_bytes=64 * 1024, worker_poll_seconds=0.5)
    server = TestServer(create_app(config))
    await server.start_server()
    try:
        pool = server.app[pool_key]
        job = await jobs.create(pool, filename=path.name, path=path, bytes_total=path.stat().st_size)
        server.app[runner_key].wake()
        before = await job_when(pool, job["id"], lambda j: j["rows_done"] >= ROWS // 4, timeout=120)
        assert before["status"] == "running" and before["rows_done"] < ROWS, before

        crashed = pair.primary
        await asyncio.to_thread(crashed.crash)
        await asyncio.to_thread(pair.fail_over)
        done = await job_when(pool, job["id"], lambda j: j["status"] not in ("queued", "running"), timeout=180)
    finally:
        await server.close()

    assert done["status"] == "completed", done
    assert (done["rows_done"], done["inserted"], done["updated"], done["skipped_manual"], done["rejected"]) == (
        ROWS, ROWS, 0, 0, 0)
    new_primary = pair.standby  # ready() has not swapped them yet
    assert not new_primary.in_recovery()
    with psycopg2.connect(new_primary.url(database)) as conn, conn.cursor() as cur:
        cur.execute("SELECT customer_id, first_name, last_name, email, city FROM customers")
        table = cur.fetchall()
        cur.execute("SELECT count(*) FROM customer_search")
        (searchable,) = cur.fetchone()
    conn.close()
    assert len(table) == ROWS  # none lost, none doubled
    assert set(table) == expected_rows(path)
    assert searchable == ROWS


@pytest.mark.slow
async def test_a_pool_whose_first_host_is_a_standby_connects_to_the_primary_at_once(replication):
    """Where a failover leaves the hosts (the old primary back as a standby, listed first).
    aiopg alone waits on the standby's closed socket until its timeout (server/multihost.py)."""
    pair = await replication.ready()
    database = await asyncio.to_thread(pair.new_database)
    hosts = ",".join(host.address for host in (pair.standby, pair.primary))
    url = f"postgresql://postgres@{hosts}/{database}?target_session_attrs=read-write"
    started = time.monotonic()
    async with aiopg.create_pool(url, minsize=1, maxsize=2, timeout=10) as pool:
        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT pg_is_in_recovery(), inet_server_port()")
            assert await cur.fetchone() == (False, pair.primary.port)
    assert time.monotonic() - started < 5
