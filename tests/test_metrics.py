"""GET /metrics: Prometheus' own parser reads it, and the import counters move during an import."""
import asyncio
import dataclasses

from prometheus_client.parser import text_string_to_metric_families

from server.app import create_app
from server.importer import jobs
from server.keys import pool_key, runner_key
from tests.sse import SseStream
from tests.importing import HEADER, TERMINAL, row, wait_for_status, write_csv

ROWS = 6000


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
