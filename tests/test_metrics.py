"""GET /metrics: Prometheus' own parser reads it, and the import counters move during an import."""
import asyncio
import dataclasses
import time

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from server.app import create_app
from server.importer import jobs
from server.keys import pool_key, runner_key
from tests.sse import SseStream
from tests.waiting import eventually
from tests.importing import HEADER, TERMINAL, row, wait_for_status, write_csv

ROWS = 6000
IN_USE = ("csv_import_db_pool_connections", (("state", "in_use"),))
UPLOADS = ("csv_import_uploads_in_progress", ())


def samples(text: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def scrape(client) -> dict[tuple[str, tuple], float]:
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    return samples(await resp.text())


async def test_metrics_count_an_import_while_it_runs(client_as, config, tmp_path):
    app = create_app(dataclasses.replace(config, batch_rows=100))
    client = await client_as("viewer", app=app)
    path = write_csv(config.import_dir / "many.csv",
                     [HEADER] + [row(i, f"M{i:05}") for i in range(ROWS)] + ["not,a,row"])

    before = await scrape(client)
    assert before[("csv_import_bytes_total", ())] == 0
    assert before[("csv_import_batch_commit_seconds_count", ())] == 0
    assert before[("csv_import_sse_streams", ())] == 0
    assert before[("csv_import_uploads_in_progress", ())] == 0
    assert before[("csv_import_db_pool_max_connections", ())] == 20
    assert ("csv_import_db_pool_connections", (("state", "in_use"),)) in before

    job = await jobs.create(app[pool_key], filename=path.name, path=path, bytes_total=path.stat().st_size)
    app[runner_key].wake()
    seen_mid_way = []
    while (await jobs.get(app[pool_key], job["id"]))["status"] not in TERMINAL:
        now = await scrape(client)
        if 0 < now[("csv_import_rows_total", (("outcome", "accepted"),))] < ROWS:
            seen_mid_way.append(now[("csv_import_rows_total", (("outcome", "accepted"),))])
        await asyncio.sleep(0.01)
    done = await wait_for_status(app, job["id"], ("completed",))

    after = await scrape(client)
    assert seen_mid_way, "no scrape saw the import half done"
    assert sorted(seen_mid_way) == seen_mid_way  # counters only go up
    assert after[("csv_import_rows_total", (("outcome", "accepted"),))] == ROWS
    assert after[("csv_import_rows_total", (("outcome", "rejected"),))] == 1
    assert after[("csv_import_bytes_total", ())] == path.stat().st_size - len(HEADER) - 1
    assert after[("csv_import_batch_commit_seconds_count", ())] >= ROWS // 100
    assert after[("csv_import_batch_commit_seconds_sum", ())] > 0
    assert done["inserted"] == ROWS


async def test_metrics_count_open_event_streams(client_as):
    client = await client_as("viewer")
    resp = await client.get("/import/events")
    assert resp.status == 200
    await SseStream(resp).next()  # the snapshot: the stream is open
    assert (await scrape(client))[("csv_import_sse_streams", ())] == 1
    resp.close()
    for _ in range(100):
        if (await scrape(client))[("csv_import_sse_streams", ())] == 0:
            break
        await asyncio.sleep(0.05)
    assert (await scrape(client))[("csv_import_sse_streams", ())] == 0


async def scraped_until(client, key, predicate, timeout: float = 10) -> float:
    """Scrape until the sample `key` satisfies `predicate`; its value then. Fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = (await scrape(client)).get(key)
        if value is not None and predicate(value):
            return value
        assert time.monotonic() < deadline, f"{key} stayed at {value}"
        await asyncio.sleep(0.02)


async def test_metrics_count_an_upload_while_its_body_arrives(client, client_as):
    viewer = await client_as("viewer")
    assert (await scrape(viewer))[UPLOADS] == 0
    rest_may_come = asyncio.Event()

    async def trickle():
        yield (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.csv\"\r\n"
               b"Content-Type: text/csv\r\n\r\n" + HEADER.encode() + b"\n")
        await rest_may_come.wait()
        yield row(1, "T1").encode() + b"\n\r\n--b--\r\n"

    upload = asyncio.create_task(client.post(
        "/import", data=aiohttp.payload.AsyncIterablePayload(trickle()),
        headers={"Content-Type": "multipart/form-data; boundary=b"}))
    try:
        assert await scraped_until(viewer, UPLOADS, lambda v: v > 0) == 1
    finally:
        rest_may_come.set()
    resp = await upload
    assert resp.status == 202, await resp.text()
    assert (await scrape(viewer))[UPLOADS] == 0  # the slot is free once the answer is out


async def test_metrics_count_a_pool_connection_while_a_request_holds_one(client_as, db):
    editor = await client_as("editor")
    await db.all("INSERT INTO customers (id, customer_id) VALUES (1, 'C1')")
    await scraped_until(editor, IN_USE, lambda v: v == 0)
    async with db.pool.acquire() as conn, conn.cursor() as cur:
        # Another session holds the row (as an import's batch would): the edit waits on
        # the lock, holding one of the app's pool connections meanwhile.
        await cur.execute("BEGIN")
        await cur.execute("SELECT * FROM customers WHERE id = 1 FOR UPDATE")
        edit = asyncio.create_task(editor.patch("/customers/1", json={"city": "Oslo"}))
        try:
            assert await scraped_until(editor, IN_USE, lambda v: v > 0) >= 1
            assert not edit.done()
        finally:
            await cur.execute("COMMIT")
    assert (await edit).status == 200
    await scraped_until(editor, IN_USE, lambda v: v == 0)


async def test_metrics_report_a_loop_that_was_held_up(client_as):
    viewer = await client_as("viewer")
    await asyncio.sleep(0.3)
    lag = ("csv_import_event_loop_lag_seconds", (("quantile", "0.99"),))
    assert lag in await scrape(viewer)
    # The loop wakes up 250 ms late, eight times: far more than a loaded test host adds,
    # and more than 1% of the samples however long the app has run before.
    for _ in range(8):
        time.sleep(0.25)
        await asyncio.sleep(0.011)
    now = await scrape(viewer)
    assert now[lag] > 0.2
    assert now[("csv_import_event_loop_lag_seconds", (("quantile", "0.5"),))] < now[lag]


async def test_the_start_up_read_of_search_into_memory_is_shown_until_it_ends(client, db):
    """What a benchmark or an operator waits for before judging a fresh service's latency."""
    async def ended():
        found = await scrape(client)
        return found if found[("csv_import_search_warming", ())] == 0 else None

    found = await eventually(ended)
    relations = await db.value("SELECT coalesce(sum(pg_relation_size(c.oid)), 0) FROM pg_class c "
                               "WHERE c.relname IN ('customer_search_pkey', 'customer_search', "
                               "'customers_customer_id_lower_id', 'customers_pkey', 'customer_search_trgm')")
    prewarm = await db.value("SELECT to_regproc('pg_prewarm') IS NOT NULL")
    # Without pg_prewarm there is nothing to read: the service says so by reading nothing.
    assert found[("csv_import_search_warmed_bytes", ())] == (relations if prewarm else 0)
