"""Migrations run whatever they take: outside the pool's statement timeout, and a
second process waits for the migration lock as long as the first needs it."""
import asyncio
import uuid

import aiopg
import psycopg2
import pytest

from server.db import MIGRATION_LOCK, drop_database, migrate, recreate_database


@pytest.fixture
def empty_db_url(server_url):
    name = f"csvimp_test_{uuid.uuid4().hex[:12]}"
    yield recreate_database(server_url, name)
    drop_database(server_url, name)


async def test_migrating_waits_past_the_pool_timeout_for_another_process(empty_db_url):
    holder = await asyncio.to_thread(psycopg2.connect, empty_db_url)
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        # A pool whose statements time out after one second, as the app's do after 30.
        async with aiopg.create_pool(empty_db_url, minsize=1, maxsize=1, timeout=1) as pool:
            migrating = asyncio.create_task(migrate(pool))
            await asyncio.sleep(2.5)  # the other process takes its time
            assert not migrating.done()
            with holder.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
            applied = await migrating
        assert applied and applied[0] == "001_initial"
    finally:
        holder.close()
