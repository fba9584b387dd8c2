"""Many SSE clients on one server: does every page get updates, and does the loop stay free?

Opens N streams with one ClientSession, counts the events each receives for
a while, and samples the server's own loop lag from GET /healthz meanwhile.
Start an import first to see progress; with none running, only snapshots come.
"""
from __future__ import annotations

import asyncio
import contextlib

import aiohttp

EVENTS_PATH = "/import/events"
LAG_SAMPLE_SECONDS = 0.5


async def run(base_url: str, clients: int = 1000, seconds: float = 20,
              headers: dict[str, str] | None = None) -> dict:
    base_url = base_url.rstrip("/")
    counts = [0] * clients
    updates = [0] * clients  # events after the first snapshot
    lag_p99: list[float] = []
    connector = aiohttp.TCPConnector(limit=clients + 10)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
        readers = [asyncio.create_task(_read(session, base_url, i, counts, updates)) for i in range(clients)]
        sampler = asyncio.create_task(_sample_lag(session, base_url, lag_p99))
        try:
            await asyncio.sleep(seconds)
        finally:
            for task in (*readers, sampler):
                task.cancel()
            await asyncio.gather(*readers, sampler, return_exceptions=True)
    return {
        "clients": clients,
        "clients_with_updates": sum(1 for n in updates if n > 0),
        "events_total": sum(counts),
        "server_loop_lag_p99_ms": max(lag_p99) if lag_p99 else None,
    }


async def _read(session: aiohttp.ClientSession, base_url: str, index: int,
                counts: list[int], updates: list[int]) -> None:
    with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
        async with session.get(base_url + EVENTS_PATH, headers={"Accept": "text/event-stream"}) as resp:
            async for line in resp.content:
                if line.startswith(b"event:"):
                    counts[index] += 1
                    if not line.startswith(b"event: snapshot") or counts[index] > 1:
                        updates[index] += 1


async def _sample_lag(session: aiohttp.ClientSession, base_url: str, p99s: list[float]) -> None:
    """The worst p99 the server reports about itself while the clients are connected."""
    while True:
        await asyncio.sleep(LAG_SAMPLE_SECONDS)
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, KeyError, ValueError):
            async with session.get(base_url + "/healthz") as resp:
                p99 = (await resp.json())["loop_lag_ms"]["p99"]
                if p99 is not None:
                    p99s.append(p99)
