"""Runs one import job: pipelines over ranges of the file, each a parse worker and a writer.

The file is cut into record-aligned ranges once (ranges.py), and the plan is
kept with the job (import_ranges). Each pipeline takes a range at a time: its
batches are parsed in a worker process and written in a thread on the
pipeline's own connection, each commit carrying the range's checkpoint and the
job's counters. While batch N commits the worker already parses batch N+1, so
neither the database nor Python waits for the other, and the event loop only
passes results along. A gzip or UTF-16 file, and a dry run (whose counting
goes in file order), is one range and one pipeline.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import logging
import os
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..config import Config
from ..db import job_connection
from . import jobs, undo
from .batch import Batch
from .dry_run import count_batch, forget_ended
from .jobs import JobRun
from .parse import FileRejected, Header, ParseLimits, fingerprint, parse_batch, read_header
from .ranges import count_lines, plan_cuts
from .workers import notice_dead_workers
from .writer import build_search_index, drop_search_index_for, prepare_session, write_batch

log = logging.getLogger(__name__)
# What must match for a file to count as unchanged when a job resumes.
FINGERPRINT_KEYS = ("size", "mtime_ns", "head", "tail")


class JobFailed(Exception):
    """The job cannot go on; the message is for the user."""


class _Stopped(Exception):
    """Paused or cancelled while the engine waited for its parse worker."""

    def __init__(self, status: str):
        super().__init__(status)
        self.status = status


def pipelines(config: Config) -> int:
    """How many pipelines an import runs (IMPORT_WORKERS; 0: one per core)."""
    return config.import_workers or os.cpu_count() or 1


@dataclasses.dataclass
class _Lane:
    """One pipeline's writer: its own connection, used on its own thread."""
    call: _ThreadCaller
    conn: Any


@dataclasses.dataclass
class _Range:
    """One range of the job's plan (import_ranges), and how far its checkpoint has got."""
    start: int
    end: int
    done_offset: int
    done_line: int


@dataclasses.dataclass
class _Engine:
    """What every step of a run works with: the settings, the parse workers, the job's own
    connection and the thread it is used on, and whom to tell about progress."""
    config: Config
    processes: Executor
    call: _ThreadCaller
    conn: Any
    on_progress: Callable[[dict], None] | None
    on_batch: Callable[[Batch, float], None] | None
    database_url: str = ""
    name: str = ""
    # The job as last told: a report from a pipeline whose commit came before it is not news.
    shown: tuple[int, int] = (-1, -1)

    def progress(self, job: dict | None) -> None:
        if self.on_progress and job:
            seen = (job.get("rows_done") or 0, job.get("bytes_done") or 0)
            if job.get("status") == "running" and seen < self.shown:
                return
            self.shown = max(seen, self.shown)
            self.on_progress(job)

    @property
    def lane(self) -> _Lane:
        return _Lane(self.call, self.conn)


@dataclasses.dataclass
class _Run:
    """What the pipelines of one run share (all on the event loop, so no lock is needed)."""
    job: JobRun
    header: Header
    file_size: int
    ranges: collections.deque[_Range]
    rejected: int                # the job's rejects as last committed
    first_write: asyncio.Lock    # the run's first batch decides about the trigram index alone
    index_decided: bool = False


async def run_job(job_id: int, *, config: Config, database_url: str, worker: str,
                  processes: Executor, on_progress: Callable[[dict], None] | None = None,
                  on_batch: Callable[[Batch, float], None] | None = None) -> str | None:
    """Run a job until it completes, fails, is paused or cancelled; return its status.

    None means another process holds the job (or it is no longer runnable).
    Database connection errors propagate: the job stays 'running' and whoever
    claims it next resumes from the last commit.
    """
    thread = ThreadPoolExecutor(1, thread_name_prefix=f"import-job-{job_id}")
    call = _ThreadCaller(thread)
    try:
        name = f"csv-import job {job_id} {worker}"
        conn = await call(job_connection, config, database_url, name)
        try:
            engine = _Engine(config, processes, call, conn, on_progress, on_batch, database_url, name)
            return await _run_claimed(engine, job_id, worker)
        finally:
            await call(conn.close)
    finally:
        thread.shutdown(wait=False)


async def _run_claimed(engine: _Engine, job_id: int, worker: str) -> str | None:
    config, call, conn = engine.config, engine.call, engine.conn
    run = await call(jobs.claim, conn, job_id, worker, config.file_wait_seconds)
    if run is None:
        return None
    log.info("import job %s started at byte %s of %s", job_id, run.bytes_done, run.path.name,
             extra={"event": "job_started", "job_id": job_id, "file": run.path.name,
                    "resumed_at_byte": run.bytes_done, "worker": worker})
    if run.kind == "undo":
        return await _run_undo(engine, run)
    try:
        await call(prepare_session, conn, config.batch_bytes)
        header, file_size = await _prepare(engine, run)
        ranges = await _plan(engine, run, header, file_size)
        shared = _Run(run, header, file_size, collections.deque(r for r in ranges if r is not None),
                      run.rejected, asyncio.Lock())
        return await _pipelines(engine, shared)
    except _Stopped as stop:
        return stop.status
    except JobFailed as exc:
        log.info("import job %s failed: %s", job_id, exc)
        engine.progress(await call(jobs.fail, conn, job_id, str(exc)))
        return "failed"
    finally:
        with contextlib.suppress(Exception):
            await call(jobs.release, conn, job_id, worker)
        # A run that dropped the search index and stopped some other way than by its last
        # batch (failed, or stopped between batches) builds it again; a job that still
        # runs (this process is shutting down) leaves it to whoever resumes the job.
        # An ended job's dry-run ids go too.
        with contextlib.suppress(Exception):
            if await call(jobs.status, conn, job_id) != "running":
                if not run.dry_run:  # which never drops it, nor builds it
                    await call(build_search_index, conn, config.search_build_memory_mb * 1024)
                await call(forget_ended, conn)


async def _run_undo(engine: _Engine, run: JobRun) -> str:
    """An undo job (undo.py): slice after slice until it ends, is paused or cancelled."""
    call, conn = engine.call, engine.conn
    try:
        after = await call(undo.prepare_session, conn, run)
        while True:
            written, after = await call(undo.undo_slice, conn, run, after, engine.config.undo_slice_rows)
            if engine.on_progress:
                engine.on_progress(written.job)
            if written.status != "running":
                return written.status
    finally:
        with contextlib.suppress(Exception):
            await call(jobs.release, conn, run.job_id, run.worker)


async def _prepare(engine: _Engine, run: JobRun) -> tuple[Header, int]:
    try:
        header = await _in_worker(engine, engine.lane, run, read_header, run.path, engine.config.max_record_bytes,
                                  run.options)
        found = await _in_worker(engine, engine.lane, run, fingerprint, run.path)
    except OSError as exc:
        raise JobFailed(_unreadable(run.path, exc)) from None
    except FileRejected as exc:
        raise JobFailed(str(exc)) from None
    if run.data_offset is None:
        await engine.call(jobs.set_header, engine.conn, run.job_id, header, found)
        run.data_offset = run.bytes_done = header.data_offset
        run.line_no = header.data_line
    elif any(found.get(k) != (run.fingerprint or {}).get(k) for k in FINGERPRINT_KEYS):
        raise JobFailed(f"the file {run.path.name} changed since the import started "
                        f"(at byte {run.bytes_done}); start a new import for the new file")
    return header, found["size"]


async def _plan(engine: _Engine, run: JobRun, header: Header, file_size: int) -> list[_Range]:
    """The job's ranges not yet done: as planned before, or planned now and kept with the job.

    A job that has committed no batch yet is cut into ranges (a plain file, not a
    dry run); one that has, and has no plan (it ran before plans were kept), goes
    on as one range from its checkpoint.
    """
    config, call, conn = engine.config, engine.call, engine.conn
    kept = await call(jobs.ranges, conn, run.job_id)
    if not kept:
        start = run.data_offset if run.data_offset is not None else header.data_offset
        cuts: list[int] = []
        fresh = run.bytes_done == start
        splittable = not (header.gzip or header.codec.startswith("utf-16") or run.dry_run)
        count = max(pipelines(config), -(-(file_size - start) // config.range_bytes))
        if fresh and splittable and count > 1 and file_size - start > 2 * config.batch_bytes:
            cuts = await _in_worker(engine, engine.lane, run, plan_cuts, run.path, header, start, file_size,
                                    count, config.max_record_bytes)
        bounds = [start, *cuts, file_size]
        counts = await asyncio.gather(*(
            _in_worker(engine, engine.lane, run, count_lines, run.path, a, b) for a, b in zip(bounds, bounds[1:-1])))
        firsts = [run.line_no]
        for lines in counts:
            firsts.append(firsts[-1] + lines)
        if fresh:
            plan = [(a, b, line, a, line) for a, b, line in zip(bounds, bounds[1:], firsts)]
        else:  # one range, from the job's checkpoint on
            plan = [(start, file_size, header.data_line, run.bytes_done, run.line_no)]
        await call(jobs.add_ranges, conn, run.job_id, plan)
        kept = await call(jobs.ranges, conn, run.job_id)
        log.info("import job %s: %s ranges", run.job_id, len(kept),
                 extra={"event": "job_planned", "job_id": run.job_id, "ranges": len(kept)})
    return [_Range(start, end, done_offset, done_line)
            for start, end, _, done_offset, done_line, done in kept if not done]


async def _pipelines(engine: _Engine, shared: _Run) -> str:
    """The pipelines, each until no range is left (or the job stops); the job's status then."""
    wanted = max(1, min(pipelines(engine.config), len(shared.ranges)))
    lanes = [engine.lane]
    threads: list[ThreadPoolExecutor] = []
    try:
        for n in range(1, wanted):
            thread = ThreadPoolExecutor(1, thread_name_prefix=f"import-job-{shared.job.job_id}-{n}")
            threads.append(thread)
            call = _ThreadCaller(thread)
            conn = await call(job_connection, engine.config, engine.database_url, f"{engine.name} pipeline {n}")
            lanes.append(_Lane(call, conn))
            await call(prepare_session, conn, engine.config.batch_bytes)
        tasks = [asyncio.create_task(_pipeline(engine, shared, lane)) for lane in lanes]
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        statuses = [task.result() for task in tasks]
        for status in statuses:
            if status != "running":
                return status
        return await engine.call(jobs.status, engine.conn, shared.job.job_id) or "running"
    finally:
        for lane in lanes[1:]:
            with contextlib.suppress(Exception):
                await lane.call(lane.conn.close)
        for thread in threads:
            thread.shutdown(wait=False)


async def _pipeline(engine: _Engine, shared: _Run, lane: _Lane) -> str:
    """Range after range, until none is left: "running" then, else the job's status."""
    try:
        while shared.ranges:
            status = await _pump(engine, shared, lane, shared.ranges.popleft())
            if status != "running":
                return status
        return "running"
    except _Stopped as stop:
        return stop.status


async def _pump(engine: _Engine, shared: _Run, lane: _Lane, part: _Range) -> str:
    """One range, batch by batch; "running" when it is done and the job goes on."""
    loop = asyncio.get_running_loop()
    config, run, header = engine.config, shared.job, shared.header
    limits = ParseLimits.of(config)

    def parse(offset: int, line: int, stream_offset: int | None = None):
        # Never more rejects than take the job past its limit: it stops inside a batch.
        within = limits.rejects_left(config.reject_limit + 1 - shared.rejected)
        return loop.run_in_executor(engine.processes, functools.partial(
            _parse, run, header, shared.file_size, within, offset=offset, line=line, stream_offset=stream_offset,
            stop_offset=part.end))

    upcoming = parse(part.done_offset, part.done_line)
    assume_new = False  # the batch before held only new customers
    try:
        while True:
            batch = await _unless_stopped(engine, lane, run, upcoming)
            last = batch.eof or shared.rejected + len(batch.rejects) > config.reject_limit
            upcoming = None if last else parse(batch.end_offset, batch.end_line, batch.stream_end)
            if shared.index_decided or run.dry_run:
                written, seconds = await _write(engine, shared, lane, batch, assume_new, part)
            else:
                async with shared.first_write:
                    written, seconds = await _write(engine, shared, lane, batch, assume_new, part)
                    if not shared.index_decided and not run.dry_run:
                        shared.index_decided = True
                        await lane.call(drop_search_index_for, lane.conn, batch, written,
                                        config.search_rebuild_share, config.search_rebuild_min_rows)
            assume_new = written.inserted == len(batch.ids) > 0
            shared.rejected = max(shared.rejected, written.job.get("rejected") or 0)
            if written.status not in ("paused", "cancelled"):  # else it rolled back
                log.debug("import job %s: batch to byte %s committed in %.3fs", run.job_id, batch.end_offset,
                          seconds, extra={"event": "batch_committed", "job_id": run.job_id,
                                          "start_offset": batch.start_offset, "end_offset": batch.end_offset,
                                          "accepted": batch.accepted, "rejected": len(batch.rejects),
                                          "commit_seconds": round(seconds, 4)})
                if engine.on_batch:
                    engine.on_batch(batch, seconds)
            engine.progress(written.job)
            if written.status != "running" or last:
                return written.status
    finally:
        if upcoming is not None:
            upcoming.cancel()


async def _write(engine: _Engine, shared: _Run, lane: _Lane, batch: Batch, assume_new: bool, part: _Range):
    """One batch committed with its range's checkpoint: (what was written, the seconds it took)."""
    config, run = engine.config, shared.job
    started = asyncio.get_running_loop().time()
    if run.dry_run:  # counts only: no customer, no index changes
        written = await lane.call(functools.partial(
            count_batch, lane.conn, run.job_id, run.worker, batch, shared.header.present, config.reject_limit,
            range_start=part.start))
    else:
        written = await lane.call(functools.partial(
            write_batch, lane.conn, run.job_id, run.worker, batch, shared.header.present, config.reject_limit,
            config.search_build_memory_mb * 1024, assume_new, range_start=part.start))
    return written, asyncio.get_running_loop().time() - started


def _in_worker(engine: _Engine, lane: _Lane, run: JobRun, fn, *args):
    """fn(*args) in a parse worker process, unless the job stops meanwhile."""
    future = asyncio.get_running_loop().run_in_executor(engine.processes, fn, *args)
    return _unless_stopped(engine, lane, run, future)


async def _unless_stopped(engine: _Engine, lane: _Lane, run: JobRun, future: asyncio.Future):
    """The parse worker's result; a pause or cancel meanwhile ends the wait (_Stopped).

    The pipeline's connection is idle while we wait (the batch before has committed), so
    it looks; work in flight finishes in the worker and is dropped. A worker that died is
    noticed too (its pool fails the future with BrokenProcessPool), even one killed while
    sending its result back, which the pool alone would wait for for ever.
    """
    while True:
        done, _ = await asyncio.wait([future], timeout=engine.config.control_poll_seconds)
        if done:
            return future.result()
        notice_dead_workers(engine.processes)
        status = await lane.call(jobs.status, lane.conn, run.job_id)
        if status != "running":
            future.cancel()
            raise _Stopped(status)


def _parse(run: JobRun, header: Header, file_size: int, limits: ParseLimits, *, offset: int, line: int,
           stream_offset: int | None, stop_offset: int) -> Batch:
    """In the parse worker: the batch from offset on (run, header and limits arrive pickled)."""
    try:
        return parse_batch(run.path, header, offset, line, job_id=run.job_id, file_size=file_size,
                           stream_offset=stream_offset, stop_offset=stop_offset, **limits.keywords())
    except FileRejected as exc:
        # Crosses the process boundary as a plain message.
        raise JobFailed(str(exc)) from None
    except OSError as exc:
        raise JobFailed(_unreadable(run.path, exc)) from None


def _unreadable(path: Path, exc: OSError) -> str:
    """What went wrong with the file, by its name: the server's paths are nobody's business."""
    if isinstance(exc, FileNotFoundError):
        return f"the file {path.name} is no longer there"
    return f"the file {path.name} could not be read: {exc.strerror or type(exc).__name__}"


class _ThreadCaller:
    """Runs blocking calls on the job's own thread, one at a time.

    A cancelled caller still waits for the call in flight: a COPY or a commit
    cannot be cut off halfway, and the connection must not be closed under it.
    """

    def __init__(self, thread: ThreadPoolExecutor):
        self.thread = thread

    async def __call__(self, fn, *args):
        future = asyncio.get_running_loop().run_in_executor(self.thread, fn, *args)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                await future
            raise


__all__ = ["JobFailed", "pipelines", "run_job"]
