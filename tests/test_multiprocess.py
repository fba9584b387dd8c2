"""Two server processes on one database: either one's page sees the job, and a dead one's job goes on."""
import asyncio
import csv
import hashlib
import sys
import time

import aiohttp
import pytest

from server.generate import generate
from tests.processes import ServerProcess, admin_headers, server_env
from tests.sse import open_stream

TABLE = ("SELECT count(*), md5(coalesce(string_agg(customer_id || '|' || coalesce(first_name, ''), E'\\n' "
         "ORDER BY customer_id COLLATE \"C\"), '')) FROM customers")


def expected_table(path) -> tuple[int, str]:
    """What the customers table must hold after importing `path`: the last occurrence of each id."""
    names: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for fields in list(csv.reader(f))[1:]:
            names[fields[1].strip()] = fields[2].strip()
    text = "\n".join(f"{cid}|{names[cid]}" for cid in sorted(names, key=lambda c: c.encode()))
    return len(names), hashlib.md5(text.encode()).hexdigest()


@pytest.fixture
def servers(db_url, tmp_path):
    env = server_env(DATABASE_URL=db_url, IMPORT_DIR=str(tmp_path), WORKER_POLL_SECONDS="1",
                     IMPORT_BATCH_BYTES=str(64 * 1024))
    both = [ServerProcess(env, tmp_path / f"server{n}.log") for n in range(2)]
    yield both
    for server in both:
        server.kill()


@pytest.mark.slow
async def test_a_job_survives_kill_9_of_its_process_and_every_page_sees_it(servers, tmp_path, db, db_url):
    path = tmp_path / "shared.csv"
    generate(path, 40_000, seed=21, about_bytes=400)
    await asyncio.gather(*(s.start() for s in servers))
    async with aiohttp.ClientSession(headers=await admin_headers(db_url)) as session:
        job = await (await session.post(servers[0].url + "/import", json={"path": "shared.csv"})).json()
        # Both runners were woken; the job's worker field says which one won.
        watcher = await open_stream(session, servers[0].url + "/import/events")
        first = await watcher.until(lambda e: e.event == "progress" and e.job["worker"] is not None)
        runner_pid = int(first[-1].job["worker"].rsplit(":", 1)[1])
        [a] = [s for s in servers if s.pid == runner_pid]
        [b] = [s for s in servers if s is not a]
        watcher.response.close()

        # A client of B sees A's progress.
        stream = await open_stream(session, b.url + "/import/events")
        assert (await stream.next()).event == "snapshot"
        seen = await stream.until(lambda e: e.event == "progress" and e.job["bytes_done"] > path.stat().st_size // 5)
        assert all(e.job["worker"].endswith(f":{a.pid}") for e in seen[1:])
        assert seen[-1].job["status"] == "running", "the import ended too soon to be killed"

        a.kill()
        killed_at = time.monotonic()
        taken = await stream.until(lambda e: (e.job.get("worker") or "").endswith(f":{b.pid}"), timeout=30)
        takeover = time.monotonic() - killed_at
        print(f"\nB took the job over {takeover:.1f}s after kill -9 of A", file=sys.stderr)
        assert takeover < 10 + 2, f"B took {takeover:.1f}s to take the job over"
        done = (await stream.until(lambda e: e.event == "state" and e.job["status"] != "running", timeout=60))[-1]
        stream.response.close()
    assert done.job["status"] == "completed", done.job
    assert done.job["id"] == job["id"] and done.job["rows_done"] == 40_000
    count, checksum = await db.one(TABLE)
    assert (count, checksum) == expected_table(path)
    assert done.job["inserted"] == count
    assert taken[-1].job["bytes_done"] > 0  # B went on from A's checkpoint, not from the start
