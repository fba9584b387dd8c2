"""Runs one import job: parse in a worker process, write in a thread, both at once.

While batch N commits (a thread, on the job's own connection) the worker
process already parses batch N+1, so neither the database nor Python waits
for the other, and the event loop only passes results along.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
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

    def progress(self, job: dict | None) -> None:
        if self.on_progress and job:
            self.on_progress(job)


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
        conn = await call(job_connection, config, database_url, f"csv-import job {job_id} {worker}")
        try:
            engine = _Engine(config, processes, call, conn, on_progress, on_batch)
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
        return await _pump(engine, run, header, file_size)
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
    loop = asyncio.get_running_loop()

    def in_worker(fn, *args):
        return _unless_stopped(engine, run, loop.run_in_executor(engine.processes, fn, *args))

    try:
        header = await in_worker(read_header, run.path, engine.config.max_record_bytes, run.options)
        found = await in_worker(fingerprint, run.path)
    except OSError as exc:
        raise JobFailed(_unreadable(run.path, exc)) from None
    except FileRejected as exc:
        raise JobFailed(str(exc)) from None
    if run.data_offset is None:
        await engine.call(jobs.set_header, engine.conn, run.job_id, header, found)
        run.bytes_done, run.line_no = header.data_offset, header.data_line
    elif any(found.get(k) != (run.fingerprint or {}).get(k) for k in FINGERPRINT_KEYS):
        raise JobFailed(f"the file {run.path.name} changed since the import started "
                        f"(at byte {run.bytes_done}); start a new import for the new file")
    return header, found["size"]


async def _pump(engine: _Engine, run: JobRun, header: Header, file_size: int) -> str:
    loop = asyncio.get_running_loop()
    config, call, conn = engine.config, engine.call, engine.conn
    limits = ParseLimits.of(config)
    rejected = run.rejected  # as the job will count them once the batches parsed so far commit

    def parse(offset: int, line: int, stream_offset: int | None = None):
        # Never more rejects than take the job past its limit: it stops inside a batch.
        within = limits.rejects_left(config.reject_limit + 1 - rejected)
        return loop.run_in_executor(engine.processes, functools.partial(
            _parse, run, header, file_size, within, offset=offset, line=line, stream_offset=stream_offset))

    upcoming = parse(run.bytes_done, run.line_no)
    first = True
    assume_new = False  # the batch before held only new customers
    try:
        while True:
            batch = await _unless_stopped(engine, run, upcoming)
            rejected += len(batch.rejects)
            last = batch.eof or rejected > config.reject_limit
            upcoming = None if last else parse(batch.end_offset, batch.end_line, batch.stream_end)
            started = loop.time()
            if run.dry_run:  # counts only: no customer, no index changes
                written = await call(count_batch, conn, run.job_id, run.worker, batch, header.present,
                                     config.reject_limit)
            else:
                written = await call(write_batch, conn, run.job_id, run.worker, batch, header.present,
                                     config.reject_limit, config.search_build_memory_mb * 1024, assume_new)
            assume_new = written.inserted == len(batch.ids) > 0
            if written.status not in ("paused", "cancelled"):  # else it rolled back
                seconds = loop.time() - started
                log.debug("import job %s: batch to byte %s committed in %.3fs", run.job_id, batch.end_offset,
                          seconds, extra={"event": "batch_committed", "job_id": run.job_id,
                                          "start_offset": batch.start_offset, "end_offset": batch.end_offset,
                                          "accepted": batch.accepted, "rejected": len(batch.rejects),
                                          "commit_seconds": round(seconds, 4)})
                if engine.on_batch:
                    engine.on_batch(batch, seconds)
            if engine.on_progress:
                engine.on_progress(written.job)
            if first and written.status == "running" and not last and not run.dry_run:
                first = False
                await call(drop_search_index_for, conn, batch, written, file_size,
                           config.search_rebuild_share, config.search_rebuild_min_rows)
            if written.status != "running" or last:
                return written.status
    finally:
        if upcoming is not None:
            upcoming.cancel()


async def _unless_stopped(engine: _Engine, run: JobRun, future: asyncio.Future):
    """The parse worker's result; a pause or cancel meanwhile ends the wait (_Stopped).

    The writer connection is idle while we wait (the batch before has committed), so it
    looks; work in flight finishes in the worker and is dropped. A worker that died is
    noticed too (its pool fails the future with BrokenProcessPool), even one killed while
    sending its result back, which the pool alone would wait for for ever.
    """
    while True:
        done, _ = await asyncio.wait([future], timeout=engine.config.control_poll_seconds)
        if done:
            return future.result()
        notice_dead_workers(engine.processes)
        status = await engine.call(jobs.status, engine.conn, run.job_id)
        if status != "running":
            future.cancel()
            raise _Stopped(status)


def _parse(run: JobRun, header: Header, file_size: int, limits: ParseLimits, *, offset: int, line: int,
           stream_offset: int | None) -> Batch:
    """In the parse worker: the batch from offset on (run, header and limits arrive pickled)."""
    try:
        return parse_batch(run.path, header, offset, line, job_id=run.job_id, file_size=file_size,
                           stream_offset=stream_offset, **limits.keywords())
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


__all__ = ["JobFailed", "run_job"]
