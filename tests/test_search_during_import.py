"""Search while an import loads a large share of the table, and the moment it ends.

Such an import drops the trigram index after its first batch and builds it
again in bulk before the job ends (docs/scaling.md). Search meanwhile walks
the table: slower, never wrong, and whole once the job says completed.
"""
import asyncio
import contextlib
import dataclasses
from datetime import datetime

import pytest

from server.app import create_app
from server.importer import jobs
from server.keys import pool_key, runner_key
from tests.importing import (HEADER, TERMINAL, import_file, row, wait_for_status,
                             wait_for_the_import_to_wait_on_a_lock, write_csv)
from tests.test_customers_api import QUERY_KINDS, all_pages, plain_scan, search_pages, small_budget  # noqa: F401

ROWS = 1000


def people(count: int, *, bad_at: int | None = None) -> list[str]:
    lines = [HEADER]
    for n in range(1, count + 1):
        first = "Zelda" if n % 3 == 0 else "Other"
        lines.append(row(n, f"S{n}", f"{first}{n}", date="not a date" if n == bad_at else "2021-05-06"))
    return lines


async def search(client, q: str) -> list[dict]:
    return await all_pages(client, "/customers", {"q": q, "limit": "37"})


async def search_index(db) -> bool:
    return bool(await db.value("SELECT count(*) FROM pg_indexes WHERE indexname = 'customer_search_trgm'"))


@contextlib.asynccontextmanager
async def held_at_its_rejects(client, db, path):
    """Start an import of `path` and hold it where it writes its first rejects (the test
    holds import_rejects): the batches before have committed and the index is dropped."""
    async with db.pool.acquire() as conn, conn.cursor() as holder:
        await holder.execute("BEGIN")
        await holder.execute("LOCK TABLE import_rejects IN SHARE MODE")
        job = await jobs.create(client.app[pool_key], filename=path.name, path=path,
                                bytes_total=path.stat().st_size)
        client.app[runner_key].wake()
        await wait_for_the_import_to_wait_on_a_lock(db, "import_rejects")
        assert not await search_index(db)
        try:
            yield job
        finally:
            await holder.execute("ROLLBACK")


@pytest.fixture
async def rebuilding_client(client_as, config):
    """Batches of 100 rows; any import of more than a batch rebuilds the index."""
    small = dataclasses.replace(config, batch_rows=100, search_rebuild_min_rows=0, search_rebuild_share=0.01)
    return await client_as("admin", app=create_app(small))


async def test_search_during_a_rebuilding_import_returns_only_matching_rows(rebuilding_client, db, tmp_path):
    client = rebuilding_client
    # The third batch holds a reject; the test holds import_rejects, so the import stops
    # there with two batches committed and the index dropped.
    path = write_csv(tmp_path / "people.csv", people(ROWS, bad_at=250))
    async with held_at_its_rejects(client, db, path) as job:
        committed = await db.value("SELECT count(*) FROM customers")
        assert committed == 200
        found = await search(client, "zelda")
        assert [c["customer_id"] for c in found] == [f"S{n}" for n in range(3, 201, 3)]
        assert all("zelda" in c["first_name"].lower() for c in found)
        assert await search(client, "lda1") == [c for c in found if "lda1" in c["first_name"].lower()]
        assert await search(client, "qqqzz") == []
        # Several words, any order, city and country among them: the same rows, checked whole.
        assert await search(client, "norway ZELDA oslo") == found
        assert await search(client, "lee lda1") == [c for c in found if "lda1" in c["first_name"].lower()]
        assert await search(client, "zelda qqqzz") == []

    done = await wait_for_status(client.app, job["id"], ("completed", "failed", "cancelled"))
    assert done["status"] == "completed", done
    # At once: no waiting for anything after the job says completed.
    assert await search_index(db)
    found = await search(client, "zelda")
    assert [c["customer_id"] for c in found] == [f"S{n}" for n in range(3, ROWS + 1, 3) if n != 250]
    assert await db.all("SELECT id, doc FROM customer_search ORDER BY id") == await db.all(
        "SELECT id, customer_search_doc(first_name, last_name, email, company, city, country) "
        "FROM customers ORDER BY id")


async def test_a_cancelled_rebuilding_import_leaves_the_index_built(rebuilding_client, db, tmp_path):
    client = rebuilding_client
    path = write_csv(tmp_path / "people.csv", people(ROWS, bad_at=250))
    async with held_at_its_rejects(client, db, path) as job:
        resp = await client.post(f"/import/jobs/{job['id']}/cancel")
        assert resp.status == 200, await resp.text()

    await wait_for_status(client.app, job["id"], ("cancelled",))
    for _ in range(100):
        if await search_index(db) and not await db.value(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'csv-import job %%' "
                "AND datname = current_database()"):
            break
        await asyncio.sleep(0.05)
    assert await search_index(db)
    assert [c["customer_id"] for c in await search(client, "zelda")] == [f"S{n}" for n in range(3, 201, 3)]


async def test_an_import_small_beside_the_table_keeps_the_index(client_as, config, db, tmp_path):
    client = await client_as("admin", app=create_app(dataclasses.replace(
        config, batch_rows=100, search_rebuild_min_rows=0, search_rebuild_share=100.0)))
    await db.all("INSERT INTO customers (customer_id, first_name) SELECT 'G' || n, 'Name' || n "
                 "FROM generate_series(1, 2000) AS n")
    index_before = await db.value("SELECT 'customer_search_trgm'::regclass::oid")
    path = write_csv(tmp_path / "people.csv", people(300))
    job = await jobs.create(client.app[pool_key], filename=path.name, path=path, bytes_total=path.stat().st_size)
    client.app[runner_key].wake()
    done = await wait_for_status(client.app, job["id"], ("completed", "failed", "cancelled"))
    assert done["status"] == "completed"
    # The same index, never dropped and built again.
    assert await db.value("SELECT 'customer_search_trgm'::regclass::oid") == index_before
    assert len(await search(client, "zelda")) == 100


async def test_a_batch_assumed_new_that_meets_an_existing_customer_is_written_again(client_as, config, db,
                                                                                    tmp_path):
    """After a batch of only new customers the next is copied without a look-up first."""
    client = await client_as("admin", app=create_app(dataclasses.replace(config, batch_rows=100)))
    await db.all("INSERT INTO customers (customer_id, first_name) VALUES ('S150', 'Before')")
    path = write_csv(tmp_path / "people.csv", people(300))
    job = await jobs.create(client.app[pool_key], filename=path.name, path=path, bytes_total=path.stat().st_size)
    client.app[runner_key].wake()
    done = await wait_for_status(client.app, job["id"], ("completed", "failed", "cancelled"))
    assert (done["status"], done["inserted"], done["updated"]) == ("completed", 299, 1)
    assert await db.value("SELECT first_name FROM customers WHERE customer_id = 'S150'") == "Zelda150"
    assert [c["customer_id"] for c in await search(client, "zelda150")] == ["S150"]
    assert await db.all("SELECT id, doc FROM customer_search ORDER BY id") == await db.all(
        "SELECT id, customer_search_doc(first_name, last_name, email, company, city, country) "
        "FROM customers ORDER BY id")


def test_the_rebuild_settings_are_read_from_the_environment_and_checked():
    from server.config import Config, ConfigError

    config = Config.from_env({"IMPORT_SEARCH_REBUILD_SHARE": "0.5", "IMPORT_SEARCH_REBUILD_MIN_ROWS": "1000",
                              "IMPORT_SEARCH_BUILD_MEMORY_MB": "512"})
    assert (config.search_rebuild_share, config.search_rebuild_min_rows, config.search_build_memory_mb) == (
        0.5, 1000, 512)
    for name, bad in (("IMPORT_SEARCH_REBUILD_SHARE", "0"), ("IMPORT_SEARCH_REBUILD_MIN_ROWS", "-1"),
                      ("IMPORT_SEARCH_BUILD_MEMORY_MB", "0")):
        with pytest.raises(ConfigError, match=name):
            Config.from_env({name: bad})


async def test_a_job_that_rebuilds_the_index_finishes_when_its_last_batch_commits(rebuilding_client, db, tmp_path):
    # The last batch's transaction also builds the trigram index: the job ends after that,
    # not when that transaction began (the moment its rows were written).
    client = rebuilding_client
    path = write_csv(tmp_path / "many.csv", people(1_000))
    job = await import_file(client.app, path)
    assert job["status"] == "completed", job
    assert await search_index(db)
    last_written, finished = await db.one(
        "SELECT max(c.created_at), j.finished_at FROM customers c JOIN import_jobs j ON j.id = c.import_job_id "
        "WHERE j.id = %s GROUP BY j.finished_at", (job["id"],))
    assert finished > last_written
    shown = await (await client.get(f"/import/jobs/{job['id']}")).json()
    assert datetime.fromisoformat(shown["finished_at"]) == finished


async def agree_with_a_plain_scan(client, db, when: str) -> None:
    for q in QUERY_KINDS + ("zelda", "lda1", "S1", "s2 zelda"):
        found, _ = await search_pages(client, q, 37)
        assert found == await plain_scan(db, q), (when, q)


@pytest.mark.slow
async def test_every_kind_of_query_agrees_with_a_plain_scan_during_an_import_and_after_its_undo(
        rebuilding_client, db, tmp_path, small_budget):
    """With the trigram index dropped by the import, every search walks within its budget,
    stopping early and going on as the pages say; once it is built again, and after an
    undo has taken the rows back out, the pages are again what a plain scan finds."""
    client = rebuilding_client
    first = await import_file(client.app, write_csv(tmp_path / "first.csv", people(300)))
    path = write_csv(tmp_path / "people.csv", [HEADER] + [
        row(n, f"S{n}", f"{'Zelda' if n % 3 == 0 else 'Anna'}{n}", company="Corp")
        for n in range(301, ROWS + 1)] + [row(ROWS + 1, "BAD", date="not a date")])
    async with held_at_its_rejects(client, db, path) as job:
        await agree_with_a_plain_scan(client, db, "during the import")
    done = await wait_for_status(client.app, job["id"], TERMINAL)
    assert done["status"] == "completed", done
    assert await search_index(db)
    await agree_with_a_plain_scan(client, db, "after the import")

    resp = await client.post(f"/import/jobs/{job['id']}/undo")
    assert resp.status == 202, await resp.text()
    undo = await wait_for_status(client.app, (await resp.json())["id"], TERMINAL)
    assert undo["status"] == "completed", undo
    assert await db.value("SELECT count(*) FROM customers") == first["rows_done"]
    await agree_with_a_plain_scan(client, db, "after the undo")
