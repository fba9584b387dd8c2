"""DATABASE_READ_URL: customer reads from a streaming standby, your own writes from the
primary, the primary when the standby is gone, and the replication lag in /metrics."""
from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from server.app import create_app
from server.config import Config, ConfigError
from tests.processes import free_port
from tests.test_metrics import scrape, scraped_until

READS = "csv_import_db_reads_total"


def reads_from(samples: dict, server: str) -> float:
    return samples.get((READS, (("server", server),)), 0)


@pytest.fixture
async def on_the_pair(replication, tmp_path, client_as):
    """The pair, and an editor's and a viewer's client of an app whose DATABASE_URL is the
    pair (multi-host) and DATABASE_READ_URL its standby."""
    pair = await replication.ready()
    database = await asyncio.to_thread(pair.new_database)
    (tmp_path / "pair-imports").mkdir()
    config = Config(database_url=pair.url(database), database_read_url=pair.standby.url(database),
                    data_dir=tmp_path / "pair-var", import_dir=tmp_path / "pair-imports", auth_cache_seconds=0)
    app = create_app(config)
    return pair, await client_as("editor", app=app), await client_as("viewer", app=app)


async def first_name(client, customer_id: int, **headers) -> str:
    resp = await client.get(f"/customers/{customer_id}", headers=headers)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["first_name"]


@pytest.mark.slow
async def test_reads_come_from_the_standby_and_your_own_writes_from_the_primary(on_the_pair):
    pair, editor, viewer = on_the_pair
    created = await editor.post("/customers", json={"customer_id": "R1", "first_name": "Old"})
    assert created.status == 201
    customer = (await created.json())["id"]
    await asyncio.to_thread(pair.caught_up)
    assert await first_name(viewer, customer) == "Old"

    # The standby stops replaying: what the primary commits now is not on it yet.
    await asyncio.to_thread(pair.standby.sql, "SELECT pg_wal_replay_pause()")
    resp = await editor.patch(f"/customers/{customer}", json={"first_name": "New"})
    assert resp.status == 200
    before = await scrape(viewer)
    # Someone else reads the standby, which lags: the old name, in one customer, a page, a search.
    assert await first_name(viewer, customer) == "Old"
    page = await (await viewer.get("/customers", params={"q": "R1"})).json()
    assert [c["first_name"] for c in page["items"]] == ["Old"]
    assert await (await viewer.get("/customers.csv", params={"q": "New"})).text() == \
        (await (await viewer.get("/customers.csv", params={"q": "nothing-matches"})).text())
    # ... and the customer's history, which has only its creation there yet.
    history = await (await viewer.get(f"/customers/{customer}/history")).json()
    assert [item["action"] for item in history["items"]] == ["insert"]
    after = await scrape(viewer)
    assert reads_from(after, "standby") - reads_from(before, "standby") == 5
    # The writer reads its own write (the primary), and so does anyone who asks for it fresh.
    assert await first_name(editor, customer) == "New"
    assert await first_name(viewer, customer, **{"Cache-Control": "no-cache"}) == "New"
    history = await (await editor.get(f"/customers/{customer}/history")).json()
    assert [item["action"] for item in history["items"]] == ["update", "insert"]
    assert reads_from(await scrape(viewer), "primary") - reads_from(after, "primary") == 3
    lag = await scraped_until(viewer, ("csv_import_db_replication_lag_bytes", ()), lambda v: v > 0)
    assert lag > 0

    # Replay resumes: the standby catches up, everyone sees the new name, the writer reads the standby again.
    await asyncio.to_thread(pair.standby.sql, "SELECT pg_wal_replay_resume()")
    await scraped_until(viewer, ("csv_import_db_replication_lag_bytes", ()), lambda v: v == 0)
    assert await first_name(viewer, customer) == "New"
    deadline = time.monotonic() + 10
    while True:  # the writer reads the primary until the watch has seen the standby catch up
        before = reads_from(await scrape(viewer), "standby")
        assert await first_name(editor, customer) == "New"
        if reads_from(await scrape(viewer), "standby") == before + 1:
            break
        assert time.monotonic() < deadline, "the writer never read the standby again"
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_when_the_standby_is_gone_reads_go_to_the_primary_without_waiting(on_the_pair):
    pair, editor, viewer = on_the_pair
    assert (await scrape(viewer))[("csv_import_db_standby_up", ())] == 1
    # The standby's host dies. The primary stops waiting for it, as Patroni (or an operator) makes it.
    await asyncio.to_thread(pair.primary.sql, "ALTER SYSTEM SET synchronous_standby_names = ''")
    await asyncio.to_thread(pair.primary.sql, "SELECT pg_reload_conf()")
    await asyncio.to_thread(pair.standby.crash)
    await scraped_until(viewer, ("csv_import_db_standby_up", ()), lambda v: v == 0)

    before = reads_from(await scrape(viewer), "primary")
    assert (await editor.post("/customers", json={"customer_id": "G1", "first_name": "Gone"})).status == 201
    started = time.monotonic()
    page = await (await viewer.get("/customers", params={"q": "G1"})).json()
    assert [c["first_name"] for c in page["items"]] == ["Gone"]
    assert time.monotonic() - started < 1.0
    assert reads_from(await scrape(viewer), "primary") == before + 1


async def test_a_standby_that_never_answered_leaves_reads_on_the_primary(config, client_as):
    """Named but not there when the service starts (a port nobody listens on): the service starts,
    and reads go to the primary."""
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    app = create_app(dataclasses.replace(config, database_read_url=dead))
    editor = await client_as("editor", app=app)
    assert (await editor.post("/customers", json={"customer_id": "P1"})).status == 201
    assert len((await (await editor.get("/customers")).json())["items"]) == 1
    samples = await scrape(editor)
    assert samples[("csv_import_db_standby_up", ())] == 0
    assert reads_from(samples, "primary") == 1 and reads_from(samples, "standby") == 0
    health = await editor.get("/healthz")
    assert health.status == 200 and (await health.json())["read_standby"] == "down"


def test_database_read_url_must_be_a_postgresql_url():
    assert Config.from_env({"DATABASE_READ_URL": "postgresql://h2:5432/db"}).database_read_url == \
        "postgresql://h2:5432/db"
    assert Config.from_env({}).database_read_url is None
    with pytest.raises(ConfigError, match="DATABASE_READ_URL"):
        Config.from_env({"DATABASE_READ_URL": "mysql://h2/db"})
