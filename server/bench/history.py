"""History and undo in the benchmark (docs/history.md), all in one run on one file:

- a first import with history and, side by side, one whose history inserts
  are no-ops (a rule on the bench database only: the same code, the same
  statements, the rows go nowhere), for history's cost on a first import;
- the re-import of the unchanged file: its time and how many rows it wrote;
- a re-import in which 1% of rows changed;
- an undo of the first import (the 1% changed since are left alone).
"""
from __future__ import annotations

import asyncio
import contextlib
import csv
import time
from pathlib import Path

import aiopg
import psycopg2

from ..config import Config
from ..db import drop_database, migrate_database, recreate_database
from ..importer.runner import JobRunner
from ..importer import undo

SHARE_CHANGED = 100  # every 100th row: 1%
# Only the bench database: history inserts go nowhere. The first import's are plain
# INSERTs (a rule cannot stand in for an INSERT inside WITH, which re-imports use).
HISTORY_OFF = "CREATE RULE bench_history_off AS ON INSERT TO customer_history DO INSTEAD NOTHING"
HISTORY_ON = "DROP RULE IF EXISTS bench_history_off ON customer_history"
WRITES = ("SELECT n_tup_upd + n_tup_ins + n_tup_del FROM pg_stat_user_tables WHERE relname = 'customers'")


def without_history(config: Config, server_url: str, csv_path: Path, our_import) -> dict:
    """The first import again, into a database of its own whose history inserts go nowhere.

    Run right after the first import, so that both meet the same machine.
    """
    off_url = recreate_database(server_url, "csvimp_bench_no_history")
    asyncio.run(migrate_database(off_url))
    _sql(off_url, HISTORY_OFF)
    try:
        return our_import(off_url, csv_path, config)
    finally:
        drop_database(server_url, "csvimp_bench_no_history")


def run(config: Config, db_url: str, csv_path: Path, our_import, first: dict, without: dict) -> list[tuple]:
    """(name, seconds, job, note) for each run; `first`: the first import into `db_url`, `without`:
    the same without history (without_history)."""
    cost = 100 * (first["seconds"] / without["seconds"] - 1)
    rows = [("import, new rows, history writes made no-ops", without, ""),
            ("import, new rows (history on)", first, f"history: {cost:+.1f}% time")]

    before = _writes(db_url)
    same = our_import(db_url, csv_path, config)
    rows.append(("import again, nothing changed", same,
                 f"{_writes(db_url) - before:,} rows written; {same['seconds'] / first['seconds']:.2f}x the first"))

    changed_path = _one_percent_changed(csv_path)
    before = _writes(db_url)
    changed = our_import(db_url, changed_path, config)
    rows.append(("import again, 1% changed", changed, f"{_writes(db_url) - before:,} rows written"))

    seconds, job = asyncio.run(_undo(config, db_url, first["job"]["id"]))
    rows.append(("undo of the first import", {"seconds": seconds, "job": job},
                 f"deleted {job['deleted']:,}, left alone {job['rejected']:,}"))
    return [(name, result["seconds"], result["job"], note) for name, result, note in rows]


def print_table(rows: list[tuple], file_rows: int) -> None:
    print("\n| history and undo | seconds | rows/s | inserted / updated / unchanged / deleted / rejected | note |")
    print("| --- | ---: | ---: | --- | --- |")
    for name, seconds, job, note in rows:
        counts = " / ".join(f"{job.get(k, 0):,}" for k in ("inserted", "updated", "unchanged", "deleted", "rejected"))
        print(f"| {name} | {seconds:.1f} | {file_rows / seconds:,.0f} | {counts} | {note} |")


def _sql(url: str, statement: str) -> None:
    with contextlib.closing(psycopg2.connect(url)) as conn, conn, conn.cursor() as cur:
        cur.execute(statement)


def _writes(url: str) -> int:
    with contextlib.closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_stat_force_next_flush()")
        cur.execute(WRITES)
        row = cur.fetchone()
        assert row is not None, "the bench database has no customers table"
        return row[0]


def _one_percent_changed(csv_path: Path) -> Path:
    """The file with every 100th row's First Name changed; made once, next to it."""
    out = csv_path.with_name(csv_path.stem + "-1pct.csv")
    if not out.exists():
        part = out.with_suffix(".part")
        with open(csv_path, newline="", encoding="utf-8") as src, open(part, "w", newline="", encoding="utf-8") as dst:
            reader, writer = csv.reader(src), csv.writer(dst)
            writer.writerow(next(reader))
            for n, fields in enumerate(reader):
                if n % SHARE_CHANGED == 0:
                    fields[2] = fields[2] + " Changed"
                writer.writerow(fields)
        part.rename(out)
    return out


async def _undo(config: Config, db_url: str, job_id: int) -> tuple[float, dict]:
    async with aiopg.create_pool(db_url, minsize=1, maxsize=2) as pool:
        job = await undo.start(pool, job_id, history_days=config.history_days)
        runner = JobRunner(config, pool, db_url)
        started = time.perf_counter()
        try:
            await runner.run(job["id"])
        finally:
            await runner.stop()
        seconds = time.perf_counter() - started
        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT import_job_json(j) FROM import_jobs j WHERE id = %s", (job["id"],))
            return seconds, (await cur.fetchone())[0]
