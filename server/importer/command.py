"""python -m server import FILE: the server's engine, in the terminal.

Same job table, same single-job rule, same checkpoints: a job started here
shows on the web page, and Ctrl-C pauses it so that the page, or running
this command again on the same file, resumes it.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import signal
import sys
from pathlib import Path

import aiopg
from tqdm import tqdm

from ..config import Config
from ..db import migrate, resolve_database_url
from . import jobs
from .dates import DateFormatUnclear
from .detect import detect_file
from .header import EncodingUnclear, FileRejected
from .runner import TRANSIENT, JobRunner

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PAUSED = 130  # the shell's code for "stopped by Ctrl-C"
FOLLOW_SECONDS = 0.5  # how often the command looks at a job another process runs


def run_import_command(config: Config, file: Path, *, progress: bool, as_json: bool, stats: bool,
                       options: dict | str | None = None) -> int:
    """`options`: the import options (docs/files.md), or a message saying what is wrong with them."""
    if isinstance(options, str):
        print(f"import: {options}", file=sys.stderr)
        return EXIT_USAGE
    path = file.expanduser().resolve()
    if not path.is_file():
        print(f"import: {file} is not a file", file=sys.stderr)
        return EXIT_USAGE
    try:
        options = detect_file(path, options, max_record_bytes=config.max_record_bytes).options
    except (DateFormatUnclear, EncodingUnclear) as exc:  # the person chooses: --date-format, --encoding
        print(f"import: {path.name}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FileRejected:
        pass  # the job fails with the reason, as the page would show it
    except OSError as exc:
        print(f"import: {file} cannot be read: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(_import(config, path, progress=progress, as_json=as_json, stats=stats,
                               options=options or {}))


async def _import(config: Config, path: Path, *, progress: bool, as_json: bool, stats: bool,
                  options: dict) -> int:
    from ..lag import LoopLag

    url = await resolve_database_url(config)
    async with aiopg.create_pool(url, minsize=1, maxsize=4) as pool:
        await migrate(pool)
        try:
            job = await _start_or_resume(pool, path, options)
        except jobs.JobActive as exc:
            print(f"import: {exc} ({exc.job['filename']}); wait for it, or pause/cancel it first",
                  file=sys.stderr)
            return EXIT_USAGE
        runner = JobRunner(config, pool, url)
        bar = _Bar(job, enabled=progress)
        lag = LoopLag()
        lag.start()
        pause_on_ctrl_c = asyncio.create_task(_pause_on_sigint(pool, job["id"]))
        try:
            await _run_or_follow(runner, pool, job["id"], bar)
        finally:
            pause_on_ctrl_c.cancel()
            await asyncio.gather(pause_on_ctrl_c, return_exceptions=True)
            await lag.stop()
            await runner.stop()
            bar.close()
        final = await jobs.get(pool, job["id"])
    if as_json:
        print(json.dumps(final))
    if stats:
        print(json.dumps({"loop_lag_ms": lag.percentiles(), "peak_rss_mb": _peak_rss_mb()}), file=sys.stderr)
    return _report(final)


async def _run_or_follow(runner: JobRunner, pool: aiopg.Pool, job_id: int, bar: _Bar) -> None:
    """Run the job here; while another process (a server) runs it, follow it to its end.

    Either way the bar shows it and the exit code says how it ended. A transient stop
    (a lost connection, a parse worker that died) is taken up again from the checkpoint.
    """
    while True:
        if not await jobs.runner_alive(pool, job_id):
            try:
                if await runner.run(job_id, on_progress=bar.update) is not None:
                    return
            except TRANSIENT as exc:
                print(f"import: job {job_id} stopped ({str(exc) or type(exc).__name__}); "
                      "going on from its checkpoint", file=sys.stderr)
        job = await jobs.get(pool, job_id)
        bar.update(job)
        if job["status"] not in ("queued", "running"):
            return
        await asyncio.sleep(FOLLOW_SECONDS)


async def _pause_on_sigint(pool: aiopg.Pool, job_id: int) -> None:
    """Ctrl-C asks the job to pause; the engine stops within seconds (a batch in flight is redone on resume)."""
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, interrupted.set)
    try:
        await interrupted.wait()
        with contextlib.suppress(jobs.TransitionNotAllowed):
            await jobs.control(pool, job_id, "pause")
    finally:
        loop.remove_signal_handler(signal.SIGINT)


async def _start_or_resume(pool: aiopg.Pool, path: Path, options: dict) -> dict:
    """A new job for the file, or the paused or orphaned job of the same file (with its own options)."""
    try:
        size = (await asyncio.to_thread(path.stat)).st_size
        return await jobs.create(pool, filename=path.name, path=path, bytes_total=size, options=options)
    except jobs.JobActive as exc:
        if not await _same_file(pool, exc.job["id"], path):
            raise
        if exc.job["status"] == "paused":
            return await jobs.control(pool, exc.job["id"], "resume")
        return exc.job  # queued, or running with nobody on it: the advisory lock decides


async def _same_file(pool: aiopg.Pool, job_id: int, path: Path) -> bool:
    found = await jobs.active(pool)
    return found is not None and found[0] == job_id and Path(found[1]) == path


def _report(job: dict) -> int:
    counts = (f"{job['inserted']} inserted, {job['updated']} updated, "
              f"{job['skipped_manual']} skipped (edited by hand), {job['rejected']} rejected")
    if job["status"] == "completed":
        print(f"import {job['id']} completed: {counts}", file=sys.stderr)
        return 0
    if job["status"] == "paused":
        print(f"import {job['id']} paused at {job['percent']}%: {counts}. "
              "Run the same command again to resume.", file=sys.stderr)
        return EXIT_PAUSED
    print(f"import {job['id']} {job['status']}: {job.get('error') or ''} ({counts})", file=sys.stderr)
    return EXIT_FAILED


def _peak_rss_mb() -> dict:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"main": round(own, 1), "parse_worker": round(workers, 1)}


class _Bar:
    """Percent of bytes, rows/s, ETA and the counters, on one terminal line."""

    def __init__(self, job: dict, *, enabled: bool):
        self.tqdm = tqdm(total=job["bytes_total"], unit="B", unit_scale=True, unit_divisor=1024,
                         desc=f"import {job['id']}", disable=not enabled, dynamic_ncols=True)
        self.tqdm.update(job["bytes_done"])
        self.rate = 0.0

    def update(self, job: dict) -> None:
        self.tqdm.total = job["bytes_total"]
        self.tqdm.update(job["bytes_done"] - self.tqdm.n)
        # A finished job has no current rate; the bar keeps showing the last one.
        self.rate = job["rows_per_second"] or self.rate
        self.tqdm.set_postfix_str(
            f"{job['rows_done']:,} rows, {self.rate:,.0f} rows/s, "
            f"+{job['inserted']:,} ~{job['updated']:,} manual {job['skipped_manual']:,} "
            f"rejected {job['rejected']:,}", refresh=False)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.tqdm.close()
