"""The customers API against a running server with a big table: pages, search, export.

Requests are sequential, from one aiohttp session, so each figure is the
latency one user sees, not throughput under load.

How the last keyset page is found cheaply: cursors are opaque to clients,
but this module is part of the server and knows their encoding
(server.customers.encode_cursor). "Is there a customer after id x?" is one
index probe (`?after=cursor(x)&limit=1`), so the highest id is found by
doubling x and then bisecting, about 2 * log2(max id) probes (~42 for two
million), and the last page is the page after cursor(max id - limit).
"""
from __future__ import annotations

import asyncio
import math
import random
import re
import statistics
import time

import aiohttp
import psutil

from ..customers import encode_cursor

NO_MATCH = ("qzxjvw", "no such customer", "zzz@@zzz", "xq_%_qx", "ÆØÅ-ÆØÅ-404")
# Under three characters there is no trigram to look up: these scan, shown apart.
SHORT = ("an", "qz")
FRAGMENTS = 100


async def run(base_url: str, server_pid: int | None = None, *, limit: int = 50,
              repeats: int = 9, headers: dict[str, str] | None = None, export: bool = True) -> list[tuple[str, str]]:
    base = base_url.rstrip("/")
    rows: list[tuple[str, str]] = []
    timeout = aiohttp.ClientTimeout(total=None, sock_read=300)
    async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
        max_id, probes = await _max_id(session, base)
        if max_id == 0:
            return [("customers", "none: load a file first")]
        first = await _median_ms(session, f"{base}/customers", {"limit": limit}, repeats)
        last_cursor = encode_cursor(max(max_id - limit, 0))
        last_page = await _get_json(session, f"{base}/customers", {"limit": limit, "after": last_cursor})
        last = await _median_ms(session, f"{base}/customers", {"limit": limit, "after": last_cursor}, repeats)
        rows += [("highest id (found by probes)", f"{max_id:,} ({probes} probes)"),
                 (f"first keyset page, limit {limit}, median of {repeats}", f"{first:.1f} ms"),
                 (f"last keyset page, limit {limit}, median of {repeats}",
                  f"{last:.1f} ms ({len(last_page['items'])} rows, next={last_page['next']})")]

        sample = await _sample(session, base, max_id)
        terms = _search_terms(sample)
        query_sets = {f"{len(terms)} typed queries": terms, f"{FRAGMENTS} random fragments": _fragments(sample)}
        # Twice: first right after an import, with the table mostly out of cache, then warm.
        for when in ("first pass", "second pass"):
            for name, queries in query_sets.items():
                timings = []
                for q in queries:
                    started = time.perf_counter()
                    await _get_json(session, f"{base}/customers", {"limit": limit, "q": q})
                    timings.append((time.perf_counter() - started) * 1000)
                slowest = sorted(zip(timings, queries), reverse=True)[:3]
                rows += [(f"search q, {name}, {when}: p50 / p95",
                          f"{_percentile(timings, 50):.1f} ms / {_percentile(timings, 95):.1f} ms"),
                         (f"search q, {name}, {when}: slowest three",
                          ", ".join(f"{ms:.1f} ms (q={q!r})" for ms, q in slowest))]
        for q in SHORT:
            started = time.perf_counter()
            found = await _get_json(session, f"{base}/customers", {"limit": limit, "q": q})
            rows.append((f"search q={q!r} (too short for trigrams)",
                         f"{(time.perf_counter() - started) * 1000:.1f} ms ({len(found['items'])} rows)"))

        if export:
            rows += await _export(session, base, server_pid)
    return rows


async def _max_id(session: aiohttp.ClientSession, base: str) -> tuple[int, int]:
    """The highest id, by asking "anything after x?": doubling, then bisecting."""
    probes = 0

    async def any_after(x: int) -> bool:
        nonlocal probes
        probes += 1
        page = await _get_json(session, f"{base}/customers", {"limit": 1, "after": encode_cursor(x)})
        return bool(page["items"])

    if not await any_after(0):
        return 0, probes
    low, high = 0, 1  # any_after(low) holds; we look for the first high where it does not
    while await any_after(high):
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        if await any_after(middle):
            low = middle
        else:
            high = middle
    return high, probes


async def _sample(session: aiohttp.ClientSession, base: str, max_id: int) -> list[dict]:
    """Fifty customers, five from each tenth of the id range."""
    sample: list[dict] = []
    for step in range(10):
        after = encode_cursor(max_id * step // 10)
        sample += (await _get_json(session, f"{base}/customers", {"limit": 5, "after": after}))["items"]
    return sample


def _search_terms(sample: list[dict]) -> list[str]:
    """About 50 queries a person would type, drawn from the data itself.

    First names are common (a few hundred in the generator), last names
    rarer, whole emails match one customer, and the no-match strings must
    look at the index and find nothing.
    """
    first = [c["first_name"] for c in sample if c["first_name"]]
    last = [c["last_name"] for c in sample if c["last_name"]]
    emails = [c["email"] for c in sample if c["email"]]
    fragments = [e.split("@")[0][1:6] for e in emails if len(e.split("@")[0]) > 6]
    words = [w for c in sample if c["company"] for w in re.findall(r"\w{4,}", c["company"])]
    return (_distinct(first, 10) + [name.upper() for name in _distinct(last, 10)] + _distinct(fragments, 10)
            + _distinct(words, 10) + _distinct(emails, 5) + list(NO_MATCH))


def _fragments(sample: list[dict]) -> list[str]:
    """Substrings of 3 to 8 characters cut at random from the searched text, across word
    and punctuation boundaries: any frequency, often few trigrams of their own."""
    chooser = random.Random(1)
    texts = [" ".join(c[field] or "" for field in ("first_name", "last_name", "email", "company"))
             for c in sample]
    fragments: list[str] = []
    while len(fragments) < FRAGMENTS:
        text, length = chooser.choice(texts), chooser.randint(3, 8)
        start = chooser.randrange(max(len(text) - length, 1))
        fragment = text[start:start + length]
        if fragment.strip():
            fragments.append(fragment)
    return fragments


async def _export(session: aiohttp.ClientSession, base: str, server_pid: int | None) -> list[tuple[str, str]]:
    """Stream /customers.csv to the end; throughput, and the server's RSS growth meanwhile."""
    process = psutil.Process(server_pid) if server_pid else None
    baseline = process.memory_info().rss if process else 0
    peak = baseline
    received = 0
    done = asyncio.Event()

    async def watch(process: psutil.Process) -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch(process)) if process else None
    started = time.perf_counter()
    try:
        async with session.get(f"{base}/customers.csv") as resp:
            resp.raise_for_status()
            async for chunk in resp.content.iter_chunked(1024 * 1024):
                received += len(chunk)
    finally:
        done.set()
        if watcher is not None:
            await watcher
    seconds = time.perf_counter() - started
    rows = [("export /customers.csv", f"{received / 1e6:,.0f} MB in {seconds:.1f} s, "
                                      f"{received / 1e6 / seconds:.1f} MB/s")]
    if process:
        rows.append(("export: server RSS growth (peak - before)",
                     f"{(peak - baseline) / 1e6:.1f} MB (before {baseline / 1e6:.0f} MB)"))
    return rows


async def _median_ms(session: aiohttp.ClientSession, url: str, params: dict, repeats: int) -> float:
    await _get_json(session, url, params)  # warm the connection and the cache once
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        await _get_json(session, url, params)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


async def _get_json(session: aiohttp.ClientSession, url: str, params: dict) -> dict:
    async with session.get(url, params=params) as resp:
        resp.raise_for_status()
        return await resp.json()


def _percentile(values: list[float], percent: int) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(len(ordered) * percent / 100) - 1, 0)]


def _distinct(values: list[str], count: int) -> list[str]:
    return list(dict.fromkeys(values))[:count]
