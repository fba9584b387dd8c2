"""./run.sh bench --edge [ROWS]: the server's event-loop lag while clients lean on its HTTP edge.

A server process runs on a fresh benchmark database holding ROWS customers
of about 1 KB each. Each scenario runs for a while; the figure is the loop
lag p50/p99 the server itself measured over exactly that time (GET
/healthz?lag_seconds=N), beside the latency of a one-customer GET made
meanwhile, which is what another user of the page would feel:

- idle: nothing but the probe, for reference;
- 40,000-part uploads: two clients at a time post a multipart body of
  40,000 empty fields before the file, again and again;
- four exports: four clients download /customers.csv at once, to the end.
"""
from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time

import aiohttp
import psycopg2

from ..config import Config
from ..db import resolve_database_url
from .runner import REPO, _admin_headers, _free_port, _fresh_database, _wait_healthy

EMPTY_PARTS = 40_000
SCENARIO_SECONDS = 15.0
PROBE_GAP = 0.05
HEADER = ("Index,Customer Id,First Name,Last Name,Company,City,Country,Phone 1,Phone 2,Email,"
          "Subscription Date,Website,About Customer\n")


def run_edge_bench(config: Config, rows: int) -> int:
    server_url = asyncio.run(resolve_database_url(config))
    db_url = _fresh_database(server_url)
    print(f"loading {rows:,} customers of about 1 KB ...", file=sys.stderr)
    _fill(db_url, rows)
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as import_dir:
        port = _free_port()
        env = {**os.environ, "DATABASE_URL": db_url, "IMPORT_DIR": import_dir, "PORT": str(port)}
        server = subprocess.Popen([sys.executable, "-m", "server", "serve"], cwd=REPO, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            results = asyncio.run(_scenarios(f"http://127.0.0.1:{port}", db_url))
        finally:
            server.terminate()
            server.wait(30)
    print(f"\n| scenario ({rows:,} customers) | loop lag p50 / p99 ms | one-customer GET p50 / max ms "
          "| what the clients got |")
    print("| --- | ---: | ---: | --- |")
    for name, lag, probe, note in results:
        print(f"| {name} | {lag['p50']} / {lag['p99']} | {probe} | {note} |")
    return 0


def _fill(db_url: str, rows: int) -> None:
    """ROWS customers straight into the table, as an import would leave them (search table too)."""
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO customers (customer_id, first_name, last_name, company, city, country, "
                    "phone_1, email, subscription_date, website, about) "
                    "SELECT 'E' || n, 'First' || n, 'Last' || n, 'Company ' || mod(n, 997), 'City', 'Norway', "
                    "'+47 ' || n, 'p' || n || '@example.com', date '2020-01-01' + mod(n, 1000), "
                    "'https://example.com/' || n, repeat(md5(n::text), 30) "
                    "FROM generate_series(1, %s) n", (rows,))
        cur.execute("ANALYZE customers")
    conn.close()


async def _scenarios(base: str, db_url: str) -> list[tuple[str, dict, str, str]]:
    await _wait_healthy(base)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=300)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0),
                                     headers=await _admin_headers(db_url)) as session:
        async with session.get(f"{base}/customers", params={"limit": 1}) as resp:
            customer_id = (await resp.json())["items"][0]["id"]
        results = []
        for name, load in (("idle", _idle), (f"{EMPTY_PARTS:,}-part uploads, 2 at a time", _part_uploads),
                           ("four /customers.csv exports at once", _exports)):
            await asyncio.sleep(1)
            started = time.monotonic()
            probe = asyncio.create_task(_probe(session, f"{base}/customers/{customer_id}"))
            note = await load(session, base)
            seconds = time.monotonic() - started
            probe.cancel()
            timings = await asyncio.gather(probe, return_exceptions=True)
            latencies = timings[0] if isinstance(timings[0], list) else []
            async with session.get(f"{base}/healthz", params={"lag_seconds": f"{seconds:.1f}"}) as resp:
                lag = (await resp.json())["loop_lag_ms"]
            probe_text = f"{statistics.median(latencies):.1f} / {max(latencies):.1f}" if latencies else "-"
            results.append((name, lag, probe_text, note))
            print(f"{name}: lag {lag}, probe {probe_text}, {note}", file=sys.stderr)
    return results


async def _probe(session: aiohttp.ClientSession, url: str) -> list[float]:
    latencies: list[float] = []
    try:
        while True:
            started = time.perf_counter()
            async with session.get(url) as resp:
                await resp.read()
            latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(PROBE_GAP)
    except asyncio.CancelledError:
        return latencies


async def _idle(session: aiohttp.ClientSession, base: str) -> str:
    await asyncio.sleep(SCENARIO_SECONDS / 3)
    return "-"


async def _part_uploads(session: aiohttp.ClientSession, base: str) -> str:
    boundary = "edgebench"
    empty = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n\r\n").encode()
    body = (empty * EMPTY_PARTS
            + f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n"
              f"Content-Type: text/csv\r\n\r\n".encode()
            + HEADER.encode() + b"1,P1,Ann,Lee,Acme,Oslo,Norway,1,,a@b.c,2021-01-01,w,x\n"
            + f"\r\n--{boundary}--\r\n".encode())
    # Signed in as admin, so each body reaches the multipart reader (an anonymous one is
    # refused with 401 before its first part is read, and would measure nothing).
    headers = {**session.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + SCENARIO_SECONDS

    async def client() -> None:
        while time.monotonic() < deadline:
            async with aiohttp.ClientSession() as own:  # the server closes each refused upload's connection
                async with own.post(f"{base}/import", data=body, headers=headers) as resp:
                    await resp.read()
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1

    await asyncio.gather(client(), client())
    if set(statuses) != {413}:
        print(f"warning: the part uploads were answered {statuses}, not 413 (MULTIPART_MAX_PARTS): "
              "the figure is not the multipart reader's", file=sys.stderr)
    return f"{len(body) / 1e6:.1f} MB bodies; statuses {dict(sorted(statuses.items()))}"


async def _exports(session: aiohttp.ClientSession, base: str) -> str:
    async def download() -> tuple[int, int]:
        size = 0
        async with session.get(f"{base}/customers.csv") as resp:
            async for chunk in resp.content.iter_chunked(1024 * 1024):
                size += len(chunk)
            return resp.status, size

    started = time.monotonic()
    results = await asyncio.gather(*(download() for _ in range(4)))
    seconds = time.monotonic() - started
    return (f"statuses {sorted(status for status, _ in results)}, "
            f"{max(size for _, size in results) / 1e6:.0f} MB each, {seconds:.1f} s")


