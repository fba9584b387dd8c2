"""./run.sh bench --engine: the import engine's own figures (docs/limits.md, docs/parsing.md).

- stray quotes: 2,000 vs 20,000 lines that each hold stray quotes (linear: the
  ratio should be near 10, the issue's bound is "under 10x" of the time per line
  growing), and how long a cancel takes to land inside a large such file;
- tiny bad rows: 1.5 M one-character rows, all rejected: event-loop lag and
  peak memory, once stopped by the reject limit and once with no limit;
- the search-table backfill of migration 003 at N customers (default 10 M).
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import aiopg
import psycopg2

from .. import sqlfiles
from ..config import Config
from ..db import drop_database, recreate_database, resolve_database_url
from ..importer import jobs
from ..importer.parse import ParseLimits, parse_batch, read_header
from .runner import REPO, _fresh_database, _watch_memory

STRAY = '{i},id{i},Jo"hn,"Doe,Acme,Oslo,Norway,1,2,a@b.c,2020-01-01,http://x\n'
HEADER = ("Index,Customer Id,First Name,Last Name,Company,City,Country,Phone 1,Phone 2,Email,"
          "Subscription Date,Website\n")


def run_engine_bench(config: Config, *, backfill_rows: int) -> int:
    bench_dir = config.data_dir / "bench"
    bench_dir.mkdir(parents=True, exist_ok=True)
    server_url = asyncio.run(resolve_database_url(config))

    print("\nstray-quote lines (each rejected by itself)")
    times, parse_times = {}, {}
    for lines in (2_000, 20_000):
        path = _write(bench_dir / f"stray-{lines}.csv", HEADER, (STRAY.format(i=i) for i in range(lines)))
        result = _import(_fresh_database(server_url), path, {"REJECT_LIMIT": str(10 * lines)})
        times[lines], parse_times[lines] = result["seconds"], _parse_only(path, config)
        print(f"  {lines:>7,} lines: import {result['seconds']:.2f} s (parse alone {parse_times[lines]:.3f} s), "
              f"rows_done {result['job']['rows_done']:,}, rejected {result['job']['rejected']:,}, "
              f"status {result['job']['status']}")
    print(f"  ratio 20,000 / 2,000 lines: import {times[20_000] / times[2_000]:.2f}x, parse alone "
          f"{parse_times[20_000] / parse_times[2_000]:.2f}x (linear is 10x; the import's fixed start-up "
          "cost makes its ratio smaller)")
    path = _write(bench_dir / "stray-2000000.csv", HEADER, (STRAY.format(i=i) for i in range(2_000_000)))
    print(f"  cancel inside a {path.stat().st_size / 1e6:.0f} MB stray-quote file lands in "
          f"{_cancel_latency(_fresh_database(server_url), path):.2f} s")

    print("\n1.5 M one-character bad rows")
    path = _write(bench_dir / "tiny-bad-1500000.csv", "Customer Id,Name\n", ("x\n" for _ in range(1_500_000)))
    for title, limit in (("reject limit 10,000 (default)", "10000"), ("no reject limit", "100000000")):
        result = _import(_fresh_database(server_url), path, {"REJECT_LIMIT": limit})
        print(f"  {title}: {result['seconds']:.1f} s, {result['job']['status']}, "
              f"{result['job']['rejected']:,} rejected; loop lag p50 / p99 "
              f"{result['lag']['p50']} / {result['lag']['p99']} ms; peak MB main RSS / PSS with parse worker "
              f"{result['rss_mb'][0]:.0f} / {result['rss_mb'][1]:.0f} MB")

    if backfill_rows:
        print(f"\nsearch-table backfill (migration 003) at {backfill_rows:,} customers")
        seconds = _backfill(server_url, backfill_rows)
        print(f"  003 applied in {seconds:.1f} s ({backfill_rows / seconds:,.0f} rows/s)")
    return 0


def _parse_only(path: Path, config: Config) -> float:
    """Seconds to parse the whole file in this process, batch by batch as the engine does."""
    started = time.perf_counter()
    header = read_header(path, config.max_record_bytes)
    offset, line, size = header.data_offset, header.data_line, path.stat().st_size
    limits = ParseLimits.of(config).keywords()
    while True:
        batch = parse_batch(path, header, offset, line, job_id=1, file_size=size, **limits)
        if batch.eof:
            return time.perf_counter() - started
        offset, line = batch.end_offset, batch.end_line


def _write(path: Path, header: str, lines) -> Path:
    if not path.exists():
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(header)
            f.writelines(lines)
    return path


def _start(db_url: str, path: Path, env: dict) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": db_url, **env}
    return subprocess.Popen([sys.executable, "-m", "server", "import", str(path), "--json", "--no-progress",
                             "--stats"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _import(db_url: str, path: Path, env: dict) -> dict:
    started = time.perf_counter()
    proc = _start(db_url, path, env)
    peak_main, peak_tree = _watch_memory(proc.pid)
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    stats = [line for line in err.splitlines() if line.startswith('{"loop_lag_ms"')]
    if not out or not stats:
        raise SystemExit(f"import failed ({proc.returncode}):\n{err[-3000:]}")
    return {"seconds": seconds, "job": json.loads(out), "lag": json.loads(stats[-1])["loop_lag_ms"],
            "rss_mb": (peak_main, peak_tree)}


def _cancel_latency(db_url: str, path: Path) -> float:
    proc = _start(db_url, path, {"REJECT_LIMIT": "100000000"})

    async def cancel() -> float:
        async with aiopg.create_pool(db_url, minsize=1, maxsize=2) as pool:
            while True:
                job = await jobs.current(pool)
                if job and job["status"] == "running" and job["bytes_done"] > 0:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(1)
            started = time.perf_counter()
            await jobs.control(pool, job["id"], "cancel")
            while (await jobs.get(pool, job["id"]))["worker"] is not None:
                await asyncio.sleep(0.02)
            return time.perf_counter() - started

    try:
        return asyncio.run(cancel())
    finally:
        proc.communicate(timeout=120)


def _backfill(server_url: str, rows: int) -> float:
    """Customers put in before 003 existed, then 003 applied: the time it takes."""
    url = recreate_database(server_url, "csvimp_bench_backfill")
    try:
        conn = psycopg2.connect(url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE schema_migrations (version text PRIMARY KEY, "
                        "applied_at timestamptz NOT NULL DEFAULT now())")
            migrations = sqlfiles.migrations()
            for _version, sql in migrations[:2]:
                cur.execute(sql)
            cur.execute("INSERT INTO customers (customer_id, first_name, last_name, company, email) "
                        "SELECT 'C' || g, 'First' || g %% 997, 'Last' || g %% 991, 'Company ' || g %% 983, "
                        "'user' || g || '@example.com' FROM generate_series(1, %s) AS g", (rows,))
            cur.execute("VACUUM ANALYZE customers")
            version, sql = migrations[2]
            assert version.startswith("003"), version
            started = time.perf_counter()
            cur.execute(sql)
            seconds = time.perf_counter() - started
        conn.close()
        return seconds
    finally:
        drop_database(server_url, "csvimp_bench_backfill")
