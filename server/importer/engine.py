"""Runs one import job: parse in a worker process, write in a thread, both at once.

While batch N commits (a thread, on the job's own connection) the worker
process already parses batch N+1, so neither the database nor Python waits
for the other, and the event loop only passes results along.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path

from psycopg2.extras import Json

from ..config import Config
from ..db import job_connection
from ..sqlfiles import queries
from .batch import Batch
from . import undo
from .dry_run import count_batch, forget_ended
from .hosts import leave_to_another_host
from .parse import FileRejected, Header, fingerprint, notice_dead_workers, parse_batch, read_header
from .writer import build_search_index, drop_search_index_for, prepare_session, write_batch

log = logging.getLogger(__name__)
SQL = queries("jobs")
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
class Claim:
    path: Path
    data_offset: int | None
    bytes_done: int
    line_no: int
    fingerprint: dict | None
    rejected: int
    options: dict  # effective, as detected or chosen when the job was created
    kind: str = "import"     # or "undo" (undo.py)
    undoes: int | None = None


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
            return await _run_claimed(job_id, worker, config, processes, call, conn, on_progress, on_batch)
        finally:
            await call(conn.close)
    finally:
        thread.shutdown(wait=False)


async def _run_claimed(job_id, worker, config, processes, call, conn, on_progress, on_batch) -> str | None:
    claim = await call(_claim, conn, job_id, worker, config.file_wait_seconds)
    if claim is None:
        return None
    log.info("import job %s started at byte %s of %s", job_id, claim.bytes_done, claim.path.name,
             extra={"event": "job_started", "job_id": job_id, "file": claim.path.name,
                    "resumed_at_byte": claim.bytes_done, "worker": worker})
    if claim.kind == "undo":
        return await _run_undo(job_id, worker, claim, config.undo_slice_rows, call, conn, on_progress)
    try:
        await call(prepare_session, conn, config.batch_bytes)
        header, file_size = await _prepare(job_id, claim, config, processes, call, conn)
        return await _pump(job_id, worker, claim, header, file_size, config, processes, call, conn,
                           on_progress, on_batch)
    except _Stopped as stop:
        return stop.status
    except JobFailed as exc:
        log.info("import job %s failed: %s", job_id, exc)
        job = await call(_fail, conn, job_id, str(exc))
        if on_progress and job:
            on_progress(job)
        return "failed"
    finally:
        with contextlib.suppress(Exception):
            await call(_release, conn, job_id, worker)
        # A run that dropped the search index and stopped some other way than by its last
        # batch (failed, or stopped between batches) builds it again; a job that still
        # runs (this process is shutting down) leaves it to whoever resumes the job.
        # An ended job's dry-run ids go too.
        with contextlib.suppress(Exception):
            if await call(_status, conn, job_id) != "running":
                if not claim.options.get("dry_run"):  # which never drops it, nor builds it
                    await call(build_search_index, conn, config.search_build_memory_mb * 1024)
                await call(forget_ended, conn)


async def _run_undo(job_id: int, worker: str, claim: Claim, slice_rows: int, call, conn, on_progress) -> str:
    """An undo job (undo.py): slice after slice until it ends, is paused or cancelled."""
    try:
        after = await call(undo.prepare_session, conn, job_id, claim.undoes)
        dry_run = bool(claim.options.get("dry_run"))
        while True:
            written, after = await call(undo.undo_slice, conn, job_id, worker, claim.undoes, after, dry_run,
                                        slice_rows)
            if on_progress:
                on_progress(written.job)
            if written.status != "running":
                return written.status
    finally:
        with contextlib.suppress(Exception):
            await call(_release, conn, job_id, worker)


async def _prepare(job_id, claim: Claim, config: Config, processes, call, conn) -> tuple[Header, int]:
    loop = asyncio.get_running_loop()

    def in_worker(fn, *args):
        return _unless_stopped(loop.run_in_executor(processes, fn, *args), processes, job_id, config, call, conn)

    try:
        header = await in_worker(read_header, claim.path, config.max_record_bytes, claim.options)
        found = await in_worker(fingerprint, claim.path)
    except OSError as exc:
        raise JobFailed(_unreadable(claim.path, exc)) from None
    except FileRejected as exc:
        raise JobFailed(str(exc)) from None
    if claim.data_offset is None:
        await call(_set_header, conn, job_id, header, found)
        claim.bytes_done, claim.line_no = header.data_offset, header.data_line
    elif any(found.get(k) != (claim.fingerprint or {}).get(k) for k in FINGERPRINT_KEYS):
        raise JobFailed(f"the file {claim.path.name} changed since the import started "
                        f"(at byte {claim.bytes_done}); start a new import for the new file")
    return header, found["size"]


async def _pump(job_id, worker: str, claim: Claim, header: Header, file_size: int, config: Config,
                processes, call, conn, on_progress, on_batch) -> str:
    loop = asyncio.get_running_loop()
    rejected = claim.rejected  # as the job will count them once the batches parsed so far commit

    def parse(offset: int, line: int, stream_offset: int | None = None):
        # Never more rejects than take the job past its limit: it stops inside a batch.
        rejects_left = config.reject_limit + 1 - rejected
        return loop.run_in_executor(processes, _parse, claim.path, header, offset, line, file_size, job_id,
                                    config.batch_bytes, config.max_record_bytes, config.batch_rows,
                                    min(config.batch_rejects, rejects_left), stream_offset)

    upcoming = parse(claim.bytes_done, claim.line_no)
    first = True
    assume_new = False  # the batch before held only new customers
    dry_run = bool(claim.options.get("dry_run"))  # counts only: no customer, no index changes
    try:
        while True:
            batch = await _unless_stopped(upcoming, processes, job_id, config, call, conn)
            rejected += len(batch.rejects)
            last = batch.eof or rejected > config.reject_limit
            upcoming = None if last else parse(batch.end_offset, batch.end_line, batch.stream_end)
            started = loop.time()
            if dry_run:
                written = await call(count_batch, conn, job_id, worker, batch, header.present, config.reject_limit)
            else:
                written = await call(write_batch, conn, job_id, worker, batch, header.present,
                                     config.reject_limit, config.search_build_memory_mb * 1024, assume_new)
            assume_new = written.inserted == len(batch.ids) > 0
            if written.status not in ("paused", "cancelled"):  # else it rolled back
                seconds = loop.time() - started
                log.debug("import job %s: batch to byte %s committed in %.3fs", job_id, batch.end_offset,
                          seconds, extra={"event": "batch_committed", "job_id": job_id,
                                          "start_offset": batch.start_offset, "end_offset": batch.end_offset,
                                          "accepted": batch.accepted, "rejected": len(batch.rejects),
                                          "commit_seconds": round(seconds, 4)})
                if on_batch:
                    on_batch(batch, seconds)
            if on_progress:
                on_progress(written.job)
            if first and written.status == "running" and not last and not dry_run:
                first = False
                await call(drop_search_index_for, conn, batch, written, file_size,
                           config.search_rebuild_share, config.search_rebuild_min_rows)
            if written.status != "running" or last:
                return written.status
    finally:
        if upcoming is not None:
            upcoming.cancel()


async def _unless_stopped(future: asyncio.Future, processes, job_id: int, config: Config, call, conn):
    """The parse worker's result; a pause or cancel meanwhile ends the wait (_Stopped).

    The writer connection is idle while we wait (the batch before has committed), so it
    looks; work in flight finishes in the worker and is dropped. A worker that died is
    noticed too (its pool fails the future with BrokenProcessPool), even one killed while
    sending its result back, which the pool alone would wait for for ever.
    """
    while True:
        done, _ = await asyncio.wait([future], timeout=config.control_poll_seconds)
        if done:
            return future.result()
        notice_dead_workers(processes)
        status = await call(_status, conn, job_id)
        if status != "running":
            future.cancel()
            raise _Stopped(status)


def _parse(path, header, offset, line, file_size, job_id, batch_bytes, max_record_bytes, max_rows,
           max_rejects, stream_offset=None):
    try:
        return parse_batch(path, header, offset, line, batch_bytes=batch_bytes,
                           max_record_bytes=max_record_bytes, job_id=job_id, file_size=file_size,
                           max_rows=max_rows, max_rejects=max_rejects, stream_offset=stream_offset)
    except FileRejected as exc:
        # Crosses the process boundary as a plain message.
        raise JobFailed(str(exc)) from None
    except OSError as exc:
        raise JobFailed(_unreadable(path, exc)) from None


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


def _claim(conn, job_id: int, worker: str, file_wait_seconds: float) -> Claim | None:
    with conn.cursor() as cur:
        cur.execute(SQL["try_lock"], {"id": job_id})
        if not cur.fetchone()[0]:
            conn.commit()
            return None
        if leave_to_another_host(cur, job_id, file_wait_seconds):
            conn.commit()
            return None  # the lock goes with the connection
        cur.execute(SQL["start_run"], {"id": job_id, "worker": worker})
        row = cur.fetchone()
        if row is None:
            cur.execute(SQL["forget_worker"], {"id": job_id})
    conn.commit()
    if row is None:
        return None
    path, data_offset, bytes_done, line_no, fp, rejected, options, kind, undoes = row
    return Claim(Path(path), data_offset, bytes_done, line_no, fp, rejected, options or {}, kind, undoes)


def _set_header(conn, job_id: int, header: Header, found: dict) -> None:
    with conn.cursor() as cur:
        cur.execute(SQL["set_header"], {
            "id": job_id, "data_offset": header.data_offset, "data_line": header.data_line,
            "bytes_total": found["size"], "columns": list(header.columns),
            "unknown": list(header.unknown), "fingerprint": Json(found),
        })
    conn.commit()


def _status(conn, job_id: int) -> str | None:
    with conn.cursor() as cur:
        cur.execute(SQL["status"], {"id": job_id})
        row = cur.fetchone()
    conn.commit()
    return None if row is None else row[0]


def _fail(conn, job_id: int, error: str) -> dict | None:
    with conn.cursor() as cur:
        cur.execute(SQL["fail"], {"id": job_id, "error": error})
        row = cur.fetchone()
    conn.commit()
    return None if row is None else row[0]


def _release(conn, job_id: int, worker: str) -> None:
    with conn.cursor() as cur:
        cur.execute(SQL["release"], {"id": job_id, "worker": worker})
    conn.commit()


__all__ = ["JobFailed", "run_job"]
