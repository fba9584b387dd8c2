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
import contextlib
import math
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import psutil

from ..customers import encode_cursor

REPO = Path(__file__).resolve().parents[2]

NO_MATCH = ("qzxjvw", "no such customer", "zzz@@zzz", "xq_%_qx", "ÆØÅ-ÆØÅ-404")
# Under three characters there is no trigram to look up: these scan, shown apart.
SHORT = ("an", "qz")
FRAGMENTS = 100
# A page takes a millisecond or two, and one in a few is slowed by whatever else the machine
# does: a median of 9 moved by up to 2 ms from run to run; of 25, less.
PAGE_REPEATS = 25


async def run(base_url: str, server_pid: int | None = None, *, limit: int = 50,
              repeats: int = 9, headers: dict[str, str] | None = None, export: bool = True,
              database_url: str | None = None) -> list[tuple[str, str]]:
    """Pages, search (warm), export; with `database_url`, search right after a restart of
    PostgreSQL and of the service too (the server at base_url is left unused after that)."""
    base = base_url.rstrip("/")
    rows: list[tuple[str, str]] = []
    timeout = aiohttp.ClientTimeout(total=None, sock_read=300)
    async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
        max_id, probes = await _max_id(session, base)
        if max_id == 0:
            return [("customers", "none: load a file first")]
        rows.append(("highest id (found by probes)", f"{max_id:,} ({probes} probes)"))
        # Measured once the service has read search into memory: while it reads (about 3 GB
        # at 10 M rows) every page waits on the same disk and cores (4.6 ms against 1.6).
        rows.append(("service's start-up read of search into memory, waited for", await _warmed(session, base)))
        rows += await _keyset_pages(session, base, max_id, limit, PAGE_REPEATS)

        sample = await _sample(session, base, max_id)
        fixed = fixed_queries(sample)
        await _timed_searches(session, base, fixed, limit)  # once to warm, not counted
        timings: list[tuple[float, str]] = []
        for _ in range(WARM_PASSES):
            timings += await _timed_searches(session, base, fixed, limit)
        rows += _search_rows(f"search, {len(fixed)} fixed queries x {WARM_PASSES}, warm", timings)

        terms = _search_terms(sample)
        query_sets = {f"{len(terms)} typed queries": terms, f"{FRAGMENTS} random fragments": _fragments(sample)}
        for name, queries in query_sets.items():
            rows += _search_rows(f"search, {name}", await _timed_searches(session, base, queries, limit))
        for q in SHORT:
            started = time.perf_counter()
            found = await _get_json(session, f"{base}/customers", {"limit": limit, "q": q})
            rows.append((f"search q={q!r} (too short for trigrams)",
                         f"{(time.perf_counter() - started) * 1000:.1f} ms ({len(found['items'])} rows, "
                         f"partial={found.get('partial')})"))

    # Restarted before the export, which reads the whole table through the buffers and
    # so leaves them (and autoprewarm's list of them) holding customers, not search.
    if database_url is not None:
        rows += await _after_a_restart(database_url, headers, fixed, limit,
                                       export=export)
    elif export:
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
            rows += await _export(session, base, server_pid)
    return rows


# The fixed query set: every kind a person types, drawn from the same rows of the
# generator's data (seed 1) each time, so that runs compare (docs/search.md).
WARM_PASSES = 3


def fixed_queries(sample: list[dict]) -> list[str]:
    """40 queries: one and two characters, name and email starts, Customer Ids exact
    and by their start, two words in any order, rare strings, strings that match
    nothing and strings that match millions of rows."""
    people = [c for c in sample if c["first_name"] and c["last_name"] and c["email"]][:3]
    ids = [c["customer_id"] for c in sample[::7]][:3]
    return (["a", "e", "7", "z"]                                         # one character
            + ["qz", "19", "an", "xo"]                                   # two
            + [c["first_name"][:3] for c in people] + [c["last_name"][:4] for c in people]  # name starts
            + [c["email"].split("@")[0][:6] for c in people]             # email starts
            + ids + [i[:6].lower() for i in ids]                         # Customer Ids, exact and started
            + [f"{c['last_name']} {c['first_name']}" for c in people]    # two words, any order
            + ["rand", "evinm", "wang zürich", "oungs", "isa.p", "ncy.ro"]  # rare strings
            + ["qzxjvw", "no such customer", "zzz@@zzz", "xq_%_qx", "ÆØÅ-ÆØÅ-404"]  # nothing
            + ["com", "gmail", "inc"])                                   # millions of rows


async def _timed_searches(session: aiohttp.ClientSession, base: str, queries: list[str],
                          limit: int) -> list[tuple[float, str]]:
    timings = []
    for q in queries:
        started = time.perf_counter()
        await _get_json(session, f"{base}/customers", {"limit": limit, "q": q})
        timings.append(((time.perf_counter() - started) * 1000, q))
    return timings


def _search_rows(name: str, timings: list[tuple[float, str]]) -> list[tuple[str, str]]:
    values = [ms for ms, _ in timings]
    slowest = sorted(timings, reverse=True)[:3]
    return [(f"{name}: p50 / p95 / p99",
             " / ".join(f"{_percentile(values, p):.1f} ms" for p in (50, 95, 99))),
            (f"{name}: slowest three", ", ".join(f"{ms:.1f} ms (q={q!r})" for ms, q in slowest))]


async def _warmed(session: aiohttp.ClientSession, base: str, timeout: float = 900) -> str:
    """Until /metrics says the service's start-up read of search has ended; what it read."""
    from prometheus_client.parser import text_string_to_metric_families

    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        async with session.get(f"{base}/metrics") as resp:
            text = await resp.text()
        figures = {sample.name: sample.value for family in text_string_to_metric_families(text)
                   for sample in family.samples}
        if figures.get("csv_import_search_warming", 0) == 0:
            return (f"{figures.get('csv_import_search_warmed_bytes', 0) / 2**20:,.0f} MB, "
                    f"ended {time.perf_counter() - started:.1f} s after the first probes")
        await asyncio.sleep(0.5)
    return f"still reading after {timeout:.0f} s"


async def _keyset_pages(session: aiohttp.ClientSession, base: str, max_id: int, limit: int,
                        repeats: int) -> list[tuple[str, str]]:
    """The first page, one 90% of the way in, and the last, as one signed-in client sees them.

    After a pause (the wait for the warm-up, the probes' last answer) the first
    twenty or so requests of this machine take half a millisecond longer,
    whichever page they ask for (measured in either order: the page timed
    first was the slow one); so all three pages are asked for untimed first,
    and then each is timed.
    """
    pages = (("first", None), ("deep (90% in)", max_id * 9 // 10), ("last", max(max_id - limit, 0)))
    requests = {name: {"limit": limit} | ({} if after is None else {"after": encode_cursor(after)})
                for name, after in pages}
    for _ in range(repeats):
        for params in requests.values():
            await _get_json(session, f"{base}/customers", params)
    rows = []
    for name, params in requests.items():
        median = await _median_ms(session, f"{base}/customers", params, repeats)
        rows.append((f"{name} keyset page, limit {limit}, p50 of {repeats}", f"{median:.1f} ms"))
    return rows


async def _after_a_restart(database_url: str, headers: dict[str, str] | None, queries: list[str],
                           limit: int, export: bool = False) -> list[tuple[str, str]]:
    """Restart PostgreSQL (pg_ctl, on this machine) and start a new service, then run
    the fixed queries at once (what the first person typing sees), and again; then
    the export from that service (none when PostgreSQL could not be restarted)."""
    restarted = await asyncio.to_thread(_restart_postgres, database_url)
    if restarted is not None:
        return [("search right after a restart", restarted)]
    started = time.perf_counter()
    async with _service(database_url) as (base, pid):
        ready = time.perf_counter() - started
        timeout = aiohttp.ClientTimeout(total=None, sock_read=300)
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
            first = await _timed_searches(session, base, queries, limit)
            second = await _timed_searches(session, base, queries, limit)
            exported = await _export(session, base, pid) if export else []
    return ([("restart: PostgreSQL and service up, healthz answers after", f"{ready:.1f} s")]
            + _search_rows(f"search right after a restart, {len(queries)} fixed queries, first pass", first)
            + _search_rows("search right after a restart, second pass", second) + exported)


def _restart_postgres(database_url: str) -> str | None:
    """pg_ctl restart of the server at database_url when its data directory is here; why not, else."""
    import psycopg2

    from ..embedded import program_path, system_user

    with contextlib.closing(psycopg2.connect(database_url)) as conn, conn.cursor() as cur:
        try:
            cur.execute("SELECT current_setting('data_directory')")
        except psycopg2.Error as exc:
            return f"skipped: {exc.pgerror or exc}"
        row = cur.fetchone()
        assert row is not None  # current_setting returns one row
        data_dir = row[0]
    if not os.path.isdir(data_dir):
        return f"skipped: the data directory {data_dir} is not on this machine"
    done = subprocess.run([program_path("pg_ctl"), "restart", "-D", data_dir, "-m", "fast", "-w",
                           "-l", os.path.join(data_dir, "bench-restart.log")],
                          capture_output=True, text=True, timeout=300, user=system_user())
    return None if done.returncode == 0 else f"skipped: pg_ctl restart failed: {done.stderr.strip()[-300:]}"


@contextlib.asynccontextmanager
async def _service(database_url: str):
    """`python -m server serve` on a free port, with its own pool: a service just started."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": database_url, "PORT": str(port)}
    server = await asyncio.create_subprocess_exec(sys.executable, "-m", "server", "serve", env=env, cwd=REPO,
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(600):
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{base}/healthz") as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.1)
            else:
                raise SystemExit(f"the service at {base} did not become healthy")
        yield base, server.pid
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 30)


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
