"""Migrations run whatever they take: outside the pool's statement timeout, and a
second process waits for the migration lock as long as the first needs it; and
sql/schema.sql shows what they make."""
import asyncio
import difflib
import uuid

import aiopg
import psycopg2
from psycopg2 import sql
import pytest

from server import schema
from server.db import MIGRATION_LOCK, drop_database, migrate, recreate_database


@pytest.fixture
def empty_db_url(server_url):
    name = f"csvimp_test_{uuid.uuid4().hex[:12]}"
    yield recreate_database(server_url, name)
    drop_database(server_url, name)


@pytest.mark.slow
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


async def test_a_role_that_may_write_customers_keeps_search_right_without_rights_on_it(db):
    """Another database role (an ETL job's) granted customers only: its rows are searchable."""
    name = sql.Identifier(f"csvimp_etl_{uuid.uuid4().hex[:8]}")
    async with db.pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(sql.SQL("CREATE ROLE {}").format(name))
        try:
            await cur.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON customers TO {}").format(name))
            await cur.execute(sql.SQL("GRANT USAGE ON SEQUENCE customers_id_seq TO {}").format(name))
            await cur.execute(sql.SQL("SET ROLE {}").format(name))
            await cur.execute("INSERT INTO customers (customer_id, first_name, last_name) "
                              "VALUES ('ETL1', 'Zebedee', 'Quarrington') RETURNING id")
            (inserted,) = await cur.fetchone()
            await cur.execute("UPDATE customers SET last_name = 'Quillfeather' WHERE id = %s", (inserted,))
            await cur.execute("RESET ROLE")
            await cur.execute("SELECT doc FROM customer_search WHERE id = %s", (inserted,))
            assert "quillfeather" in (await cur.fetchone())[0]
            await cur.execute(sql.SQL("SET ROLE {}").format(name))
            await cur.execute("DELETE FROM customers WHERE id = %s", (inserted,))
            await cur.execute("RESET ROLE")
            await cur.execute("SELECT count(*) FROM customer_search WHERE id = %s", (inserted,))
            assert (await cur.fetchone())[0] == 0
        finally:
            await cur.execute("RESET ROLE")
            await cur.execute(sql.SQL("DROP OWNED BY {}").format(name))
            await cur.execute(sql.SQL("DROP ROLE {}").format(name))


def test_the_schema_file_is_what_the_migrations_make(db_url):
    """A new migration without a regenerated sql/schema.sql fails here. (A copy of the
    migrated template: a connection to the template itself would stop the next copy.)"""
    made = schema.dump(db_url)
    committed = schema.SCHEMA_FILE.read_text(encoding="utf-8")
    if committed != made:
        diff = difflib.unified_diff(committed.splitlines(), made.splitlines(),
                                    "sql/schema.sql (committed)", "what the migrations make", lineterm="")
        shown = "\n".join(list(diff)[:80])
        pytest.fail(f"sql/schema.sql is out of date: run `{schema.REGENERATE}` and commit it.\n{shown}",
                    pytrace=False)
