"""Orchestrates the benchmark: a file, a fresh database, each measurement, one table."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import psutil

from ..config import Config
from ..db import migrate_database, recreate_database, resolve_database_url, with_database
from ..embedded import psql_path
from ..generate import generate
from . import history

BENCH_DB = "csvimp_bench"
REPO = Path(__file__).resolve().parent.parent.parent


MARKS = (10, 50, 90)  # percent of the file at which the big mode reports the import's peak memory


def run_bench(config: Config, rows: int, *, about_bytes: int = 1000, big: bool = False) -> int:
    """The side-by-side table; `big` (about 10 GB) skips the re-import and the SSE load."""
    bench_dir = config.data_dir / "bench"
    bench_dir.mkdir(parents=True, exist_ok=True)
    csv_path = bench_dir / f"customers-{rows}-{about_bytes}.csv"
    if not csv_path.exists():
        print(f"generating {csv_path} ...", file=sys.stderr)
        generate(csv_path, rows, seed=1, about_bytes=about_bytes)
    server_url = asyncio.run(resolve_database_url(config))
    db_url = _fresh_database(server_url)
    size_mb = csv_path.stat().st_size / 1e6
    print(f"file: {csv_path.name}, {rows:,} rows, {size_mb:,.0f} MB; "
          f"machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
          f"{platform.platform()}", file=sys.stderr)

    db_url, first = _imports_side_by_side(config, server_url, db_url, csv_path, rows, size_mb)
    if not big:  # history's cost on a first import, side by side (docs/history.md)
        without_history = history.without_history(config, server_url, csv_path, _our_import)
    _print_rss_marks(first)

    extra = asyncio.run(_api_benchmarks(config, db_url, csv_path, sse=not big))
    for title, pairs in extra:
        print(f"\n{title}")
        for metric, value in pairs:
            print(f"  {metric:<45} {value}")
    if not big:  # last: the undo empties the table the API figures need
        history.print_table(history.run(config, db_url, csv_path, _our_import, first, without_history), rows)
    return 0


def run_import_bench(config: Config, rows: int, *, about_bytes: int = 1000) -> int:
    """Only the imports side by side (the baselines, 1 and N workers, pinned): a quick smoke run."""
    csv_path = config.data_dir / "bench" / f"customers-{rows}-{about_bytes}.csv"
    if not csv_path.exists():
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        generate(csv_path, rows, seed=1, about_bytes=about_bytes)
    server_url = asyncio.run(resolve_database_url(config))
    _imports_side_by_side(config, server_url, _fresh_database(server_url), csv_path, rows,
                          csv_path.stat().st_size / 1e6)
    return 0


def _imports_side_by_side(config: Config, server_url: str, db_url: str, csv_path: Path, rows: int,
                          size_mb: float) -> tuple[str, dict]:
    """The baselines and our imports, one after the other, and their tables; the database and the run
    of the import with one worker per core, which the rest of the bench goes on with."""
    keys_only_seconds = _psql_copy(db_url, csv_path, with_search_index=False)
    copied, indexed = _psql_copy_then_index(db_url, csv_path)
    copy_seconds = copied + indexed
    workers = max(2, os.cpu_count() or 1)
    runs = {}
    for title, env, cpus in _import_runs(workers):
        db_url = _fresh_database(server_url)
        runs[title] = _our_import(db_url, csv_path, config, env=env, cpus=cpus)
    table = [("psql \\copy, keys only, no search index", keys_only_seconds, None, None, None),
             (f"psql \\copy ({copied:.1f} s) then bulk CREATE INDEX of the search text ({indexed:.1f} s)",
              copy_seconds, None, None, None)]
    table += [(title, run["seconds"], run["rss_mb"], run["lag"], run["job"]) for title, run in runs.items()]
    print(f"load average now: {', '.join(f'{load:.2f}' for load in os.getloadavg())}")
    _print_import_table(table, rows, size_mb, copy_seconds, keys_only_seconds)
    _print_cpu_table(runs, rows)
    return db_url, runs[f"import, new rows, {workers} workers"]


def run_api_bench(config: Config, rows: int, *, about_bytes: int = 1000) -> int:
    """Only the customers API (pages, search warm and after a restart, export) on the bench database.

    The database is kept between runs: our import loads the file only when
    it holds no customer, and pending migrations are applied (and timed)
    first, so a change to search can be measured before and after on the
    same rows, minutes apart.
    """
    csv_path = config.data_dir / "bench" / f"customers-{rows}-{about_bytes}.csv"
    if not csv_path.exists():
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        print(f"generating {csv_path} ...", file=sys.stderr)
        generate(csv_path, rows, seed=1, about_bytes=about_bytes)
    server_url = asyncio.run(resolve_database_url(config))
    db_url = _kept_database(server_url, f"{BENCH_DB}_{rows}")
    started = time.perf_counter()
    applied = asyncio.run(migrate_database(db_url))
    if applied:
        print(f"migrations {', '.join(applied)} applied in {time.perf_counter() - started:.1f} s")
    if _customer_count(db_url) == 0:
        first = _our_import(db_url, csv_path, config)
        print(f"loaded {first['job']['rows_done']:,} rows with our import in {first['seconds']:.1f} s "
              f"({csv_path.stat().st_size / 1e9:.1f} GB, {first['job']['status']})")
        _print_rss_marks(first)
    print(f"load average now: {', '.join(f'{load:.2f}' for load in os.getloadavg())}")
    for title, pairs in asyncio.run(_api_benchmarks(config, db_url, csv_path, sse=False, restart=True)):
        print(f"\n{title}")
        for metric, value in pairs:
            print(f"  {metric:<45} {value}")
    return 0


def _print_rss_marks(run: dict) -> None:
    """The import's peak memory as it passed 10, 50 and 90% of its file: flat, or growing with it."""
    marks = run["rss_at"]
    print("\nimport, new rows: peak MB (main RSS / PSS with parse workers) up to "
          + ", ".join(f"{mark}%: {marks[mark][0]:.0f} / {marks[mark][1]:.0f}" if mark in marks else f"{mark}%: -"
                      for mark in MARKS))


def _kept_database(server_url: str, name: str) -> str:
    """A kept bench database as it is, created if missing: one per size, apart from the full bench's
    `csvimp_bench`, which every full run makes afresh (a 10 M table takes minutes to load again)."""
    import psycopg2

    with contextlib.closing(psycopg2.connect(server_url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        exists = cur.fetchone() is not None
    return with_database(server_url, name) if exists else recreate_database(server_url, name)


def _customer_count(db_url: str) -> int:
    """0 when the table is empty, else 1: enough to know whether to load."""
    import psycopg2

    with contextlib.closing(psycopg2.connect(db_url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM (SELECT 1 FROM customers LIMIT 1) AS any_row")
        row = cur.fetchone()
        assert row is not None  # count(*) always returns one row
        return row[0]


def _fresh_database(server_url: str) -> str:
    """A new database with our schema; the benchmark never touches the app's own data."""
    url = recreate_database(server_url, BENCH_DB)
    asyncio.run(migrate_database(url))
    return url


def _psql_copy_then_index(db_url: str, csv_path: Path) -> tuple[float, float]:
    """What a careful person does by hand: \\copy into a table without indexes, then one bulk
    CREATE INDEX of the same search text (trigram GIN, maintenance_work_mem 1 GB); the seconds of each."""
    psql = psql_path()
    setup = ("DROP TABLE IF EXISTS bench_copy; "
             "CREATE TABLE bench_copy (LIKE customers INCLUDING DEFAULTS INCLUDING IDENTITY); "
             "ALTER TABLE bench_copy ADD COLUMN source_index bigint;")
    subprocess.run([psql, "-q", "-v", "ON_ERROR_STOP=1", db_url, "-c", setup], check=True)
    started = time.perf_counter()
    subprocess.run([psql, "-q", "-v", "ON_ERROR_STOP=1", db_url, "-c", _copy_command(csv_path)], check=True)
    copied = time.perf_counter() - started
    index = ("SET maintenance_work_mem = '1GB'; CREATE INDEX ON bench_copy USING gin "
             "(customer_search_doc(first_name, last_name, email, company, city, country) gin_trgm_ops);")
    started = time.perf_counter()
    subprocess.run([psql, "-q", "-v", "ON_ERROR_STOP=1", db_url, "-c", index], check=True)
    indexed = time.perf_counter() - started
    subprocess.run([psql, "-q", db_url, "-c", "DROP TABLE bench_copy; CHECKPOINT;"], check=True)
    return copied, indexed


def _copy_command(csv_path: Path) -> str:
    return (r"\copy bench_copy (source_index, customer_id, first_name, last_name, company, city, "
            r"country, phone_1, phone_2, email, subscription_date, website, about) "
            f"FROM '{csv_path}' WITH (FORMAT csv, HEADER true)")


def _psql_copy(db_url: str, csv_path: Path, *, with_search_index: bool) -> float:
    """\\copy into a fresh table with the customers table's columns and keys, and (or not) a search index.

    The search index is the one our import feeds (through the customer_search
    table), put on the copied table itself: the cheapest way for \\copy to
    leave the same text searchable.
    """
    psql = psql_path()
    setup = ("DROP TABLE IF EXISTS bench_copy; "
             "CREATE TABLE bench_copy (LIKE customers INCLUDING ALL); "
             "ALTER TABLE bench_copy ADD COLUMN source_index bigint;")
    if with_search_index:
        setup += ("CREATE INDEX ON bench_copy USING gin "
                  "(customer_search_doc(first_name, last_name, email, company, city, country) gin_trgm_ops);")
    subprocess.run([psql, "-q", "-v", "ON_ERROR_STOP=1", db_url, "-c", setup], check=True)
    copy = _copy_command(csv_path)
    started = time.perf_counter()
    subprocess.run([psql, "-q", "-v", "ON_ERROR_STOP=1", db_url, "-c", copy], check=True)
    seconds = time.perf_counter() - started
    subprocess.run([psql, "-q", db_url, "-c", "DROP TABLE bench_copy; CHECKPOINT;"], check=True)
    return seconds


def _import_runs(workers: int) -> list[tuple[str, dict, list[int] | None]]:
    """Our import with 1 and with `workers` pipelines, then pinned (PostgreSQL too) to one core and to two."""
    runs: list[tuple[str, dict, list[int] | None]] = [("import, new rows, 1 worker", {"IMPORT_WORKERS": "1"}, None)]
    if _can_pin():
        runs += [("import pinned to 1 core, 1 worker", {"IMPORT_WORKERS": "1"}, [0]),
                 ("import pinned to 2 cores, 2 workers", {"IMPORT_WORKERS": "2"}, [0, 1])]
    # Last: the database the re-import, history and API figures go on with.
    runs.append((f"import, new rows, {workers} workers", {"IMPORT_WORKERS": str(workers)}, None))
    return runs


def _can_pin() -> bool:
    return hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2


def _our_import(db_url: str, csv_path: Path, config: Config, *, env: dict | None = None,
                cpus: list[int] | None = None) -> dict:
    """Our import in a process of its own; with `cpus`, it and PostgreSQL run on those cores only.

    Also the CPU seconds of each stage: the parse processes, the importing process
    (its writer threads and event loop), and PostgreSQL (its processes, including
    the ones that ended meanwhile, as its postmaster's children).
    """
    env = {**os.environ, "DATABASE_URL": db_url, "IMPORT_BATCH_BYTES": str(config.batch_bytes), **(env or {})}
    postmaster = _postmaster(db_url)
    with _pinned(postmaster, cpus):
        pg_before = _tree_cpu(postmaster)
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "server", "import", str(csv_path), "--json",
                                 "--no-progress", "--stats"], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=None if cpus is None else (lambda: os.sched_setaffinity(0, cpus)))
        peak_main, peak_tree, rss_at, cpu = _watch_memory_and_progress(proc.pid, db_url)
        out, err = proc.communicate()
        seconds = time.perf_counter() - started
        cpu["postgres"] = _tree_cpu(postmaster) - pg_before
    if proc.returncode != 0:
        raise SystemExit(f"import failed ({proc.returncode}):\n{err[-3000:]}")
    stats = json.loads([line for line in err.splitlines() if line.startswith('{"loop_lag_ms"')][-1])
    return {"seconds": seconds, "job": json.loads(out), "lag": stats["loop_lag_ms"],
            "rss_mb": (peak_main, peak_tree), "rss_at": rss_at, "cpu": cpu}


def _postmaster(db_url: str) -> psutil.Process:
    import psycopg2

    with contextlib.closing(psycopg2.connect(db_url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        row = cur.fetchone()
        assert row is not None
        return psutil.Process(psutil.Process(row[0]).ppid())


def _tree_cpu(proc: psutil.Process) -> float:
    """CPU seconds of a process, of its children that ended (reaped), and of those alive."""
    times = proc.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in proc.children():
        with contextlib.suppress(psutil.NoSuchProcess):
            child_times = child.cpu_times()
            total += child_times.user + child_times.system
    return total


@contextlib.contextmanager
def _pinned(postmaster: psutil.Process, cpus: list[int] | None):
    """PostgreSQL on `cpus` (its running processes, and those it forks meanwhile), then as before."""
    if cpus is None:
        yield
        return
    procs = [postmaster, *postmaster.children()]
    before = {}
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):  # a backend or autovacuum worker may end meanwhile
            before[p.pid] = p.cpu_affinity()
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.cpu_affinity(cpus)
    try:
        yield
    finally:
        for p in [postmaster, *postmaster.children()]:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.cpu_affinity(before.get(p.pid, before[postmaster.pid]))


def _watch_memory(pid: int) -> tuple[float, float]:
    """Peak RSS of the importing process, and peak PSS of it plus its parse workers, in MB."""
    peak_main, peak_tree, _, _ = _watch_memory_and_progress(pid, None)
    return peak_main, peak_tree


def _watch_memory_and_progress(pid: int, db_url: str | None
                               ) -> tuple[float, float, dict[int, tuple[float, float]], dict[str, float]]:
    """Peak RSS of the importing process, and peak PSS of it plus its parse workers (_pss), in MB.

    Also the peaks so far when the job passed each of MARKS percent of its file
    (the job's progress read from the database every second), and the CPU
    seconds of the process ("writer": its threads and loop) and of its parse
    workers ("parse"), as last seen.
    """
    import psycopg2

    peak_main = peak_tree = 0.0
    rss_at: dict[int, tuple[float, float]] = {}
    cpu_main = 0.0
    cpu_children: dict[int, float] = {}
    conn = None if db_url is None else psycopg2.connect(db_url, application_name="csv-import bench watcher")
    next_look = next_pss = 0.0
    try:
        proc = psutil.Process(pid)
        while proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
            main = proc.memory_info().rss
            children = proc.children(recursive=True)
            # PSS once a second: the kernel walks each process's page tables for it (2 to 3 ms
            # for a 170 MB process), which ten times a second took near a tenth of a core
            # from the import it measures. The memory is flat; a second misses no peak of it.
            tree = 0
            if time.monotonic() >= next_pss:
                next_pss = time.monotonic() + 1
                tree = sum(_pss(p) for p in (proc, *children))
            times = proc.cpu_times()
            cpu_main = times.user + times.system
            for child in children:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child_times = child.cpu_times()
                    cpu_children[child.pid] = child_times.user + child_times.system
            peak_main, peak_tree = max(peak_main, main / 1e6), max(peak_tree, tree / 1e6)
            if conn is not None and time.monotonic() >= next_look:
                next_look = time.monotonic() + 1
                with conn, conn.cursor() as cur:
                    cur.execute("SELECT 100.0 * bytes_done / greatest(bytes_total, 1) FROM import_jobs "
                                "WHERE status = 'running' ORDER BY id DESC LIMIT 1")
                    found = cur.fetchone()
                for mark in MARKS:
                    if found is not None and found[0] >= mark and mark not in rss_at:
                        rss_at[mark] = (peak_main, peak_tree)
            time.sleep(0.1)
    except psutil.NoSuchProcess:
        pass
    finally:
        if conn is not None:
            conn.close()
    return peak_main, peak_tree, rss_at, {"writer": cpu_main, "parse": sum(cpu_children.values())}


def _print_cpu_table(runs: dict[str, dict], rows: int) -> None:
    """CPU seconds per stage of each of our imports, and what they add up to per row."""
    print("\n| run | seconds | parse processes CPU s | importing process CPU s | PostgreSQL CPU s "
          "| CPU s total | CPU µs per row | rows/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for title, run in runs.items():
        cpu = run["cpu"]
        total = cpu["parse"] + cpu["writer"] + cpu["postgres"]
        print(f"| {title} | {run['seconds']:.1f} | {cpu['parse']:.1f} | {cpu['writer']:.1f} | {cpu['postgres']:.1f} "
              f"| {total:.1f} | {total / rows * 1e6:.0f} | {rows / run['seconds']:,.0f} |")
    pinned = [run for title, run in runs.items() if title.startswith("import pinned")]
    if len(pinned) == 2:
        print(f"\ntwo cores give {pinned[0]['seconds'] / pinned[1]['seconds']:.2f}x the throughput of one")


def _pss(proc: psutil.Process) -> int:
    """The process's share of memory: its own pages, and each page it shares divided among the sharers.

    Summed over a process tree it counts every page once. RSS would count the
    libraries the importing process and its spawned parse workers all map
    (libpython, libssl, ...) once per process: 344 MB against 281 MB of PSS for
    the same import with two pipelines.
    """
    try:
        return proc.memory_full_info().pss
    except psutil.NoSuchProcess:
        return 0


def _print_import_table(table, rows: int, size_mb: float, copy_seconds: float, keys_only_seconds: float) -> None:
    print("\n| run | seconds | rows/s | MB/s | vs \\copy then bulk CREATE INDEX | vs \\copy keys only "
          "| peak MB: main RSS / PSS with parse workers | loop lag p50 / p99 ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, seconds, rss, lag, job in table:
        rss_text = "-" if rss is None else f"{rss[0]:.0f} / {rss[1]:.0f}"
        lag_text = "-" if lag is None else f"{lag['p50']} / {lag['p99']}"
        print(f"| {name} | {seconds:.1f} | {rows / seconds:,.0f} | {size_mb / seconds:.1f} "
              f"| {copy_seconds / seconds:.2f}x | {keys_only_seconds / seconds:.2f}x | {rss_text} | {lag_text} |")
        if job is not None and (job["status"] != "completed" or job["rows_done"] != rows):
            print(f"  ! job {job['id']} ended {job['status']} with {job['rows_done']} rows", file=sys.stderr)


async def _api_benchmarks(config: Config, db_url: str, csv_path: Path, *, sse: bool = True,
                          export: bool = True, restart: bool = False) -> list[tuple[str, list]]:
    """The customers API on the loaded table, and 1,000 SSE clients during an import."""
    try:
        from . import customers, sse_load
    except ImportError as exc:
        return [("API benchmarks skipped", [("reason", str(exc))])]
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "IMPORT_DIR": str(csv_path.parent),
           "IMPORT_BATCH_BYTES": str(config.batch_bytes), "PORT": str(port),
           # The SSE load is 1,000 streams of one admin: above the per-person cap (issue 22).
           "SSE_MAX_STREAMS_PER_USER": "2000"}
    server = await asyncio.create_subprocess_exec(sys.executable, "-m", "server", "serve", cwd=REPO, env=env,
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        await _wait_healthy(base)
        headers = await _admin_headers(db_url)
        results = [("customers API (2 reads: first and last keyset page, search" + (", export)" if export else ")"),
                    await customers.run(base, server_pid=server.pid, headers=headers, export=export,
                                        database_url=db_url if restart else None))]
        if sse:
            results.append(("1,000 SSE clients on one process during an import",
                            await _sse_during_import(base, csv_path, sse_load, headers)))
        return results
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 30)


async def _admin_headers(db_url: str) -> dict[str, str]:
    """A fresh admin token in the bench database: the API needs a signed-in caller."""
    import aiopg

    from ..auth import store
    from ..auth.roles import Role

    async with aiopg.create_pool(db_url, minsize=1, maxsize=1) as pool:
        token = await store.create_token(pool, f"bench-{os.getpid()}-{int(time.time())}", Role.admin,
                                         expires_days=1)
    return {"Authorization": f"Bearer {token}"}


async def _sse_during_import(base: str, csv_path: Path, sse_load, headers: dict[str, str]) -> list[tuple[str, str]]:
    import aiohttp

    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(f"{base}/import", json={"path": csv_path.name}) as resp:
            job = await resp.json()
            if resp.status != 202:
                return [("could not start an import", json.dumps(job))]
        report = await sse_load.run(base, clients=1000, seconds=20, headers=headers)
        async with session.post(f"{base}/import/jobs/{job['id']}/cancel") as resp:
            await resp.read()
    return [(key, str(value)) for key, value in report.items()]


async def _wait_healthy(base: str, timeout: float = 60) -> None:
    import aiohttp

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{base}/healthz") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise SystemExit(f"the server at {base} did not become healthy")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
