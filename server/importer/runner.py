"""Who runs which job: one runner per process, owned by the app.

Any number of processes may share one database. Each runner looks for a job
that is queued, or running without a live runner (its advisory lock is free),
when woken (a new job, a resume) and every few seconds, so a job whose process
died is taken over by another within WORKER_POLL_SECONDS plus one batch.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import socket
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import aiopg
import psycopg2
from aiohttp import web

from ..config import Config
from ..keys import config_key, database_url_key, metrics_key, pool_key, runner_key
from . import jobs
from .batch import Batch
from .engine import pipelines, run_job
from .workers import exit_with_parent, notice_dead_workers
from .writer import CheckpointMoved
from ..tasks import cancel_and_wait

log = logging.getLogger(__name__)

# A job's figures, as the end-of-run log record carries them.
COUNTERS = ("bytes_done", "bytes_total", "line_no", "inserted", "updated", "skipped_manual", "rejected")
STOP_WAIT_SECONDS = 5  # for a parse worker to finish its batch when the runner stops
# Lost connections, lost races and a parse worker that died (the OOM killer's kill -9)
# end a run, not the job: it resumes from its checkpoint, in a new worker.
TRANSIENT = (psycopg2.OperationalError, psycopg2.InterfaceError, CheckpointMoved, BrokenProcessPool)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class JobRunner:
    def __init__(self, config: Config, pool: aiopg.Pool, database_url: str,
                 on_batch: Callable[[Batch, float], None] | None = None):
        self.config = config
        self.on_batch = on_batch  # each committed batch and its commit time (the app's metrics)
        self.pool = pool
        self.database_url = database_url
        self.worker = worker_name()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._processes: ProcessPoolExecutor | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name="import-runner")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        processes = self._drop_worker_processes(wait=True)
        if processes is not None:
            # Until the pool's manager thread has ended: CPython 3.11's exit handler wakes
            # that thread without a lock, and one that is closing its wake-up pipe meanwhile
            # makes the exit print "OSError: Bad file descriptor". A worker still parsing
            # a batch is waited for a while, not for ever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_WAIT_SECONDS):
                    await asyncio.shield(asyncio.to_thread(processes.shutdown, wait=True, cancel_futures=True))

    def problem(self) -> str | None:
        """Why this process would run no job now, or None while its runner lives."""
        if self._task is None or not self._task.done():
            return None
        if self._task.cancelled():
            return "the import runner was cancelled"
        return f"the import runner stopped: {self._task.exception()!r}"

    def wake(self) -> None:
        self._wake.set()

    async def run(self, job_id: int, on_progress: Callable[[dict], None] | None = None) -> str | None:
        """Run one job here and now; its final status, or None when another process has it.

        TRANSIENT errors propagate (the job waits to be taken up again); any other error
        in the job's own bookkeeping fails the job with a message, so the next can start.
        """
        try:
            status = await run_job(job_id, config=self.config, database_url=self.database_url,
                                   worker=self.worker, processes=self._worker_processes(),
                                   on_progress=on_progress, on_batch=self.on_batch)
        except BrokenProcessPool:
            self._drop_worker_processes()
            raise
        except TRANSIENT:
            raise
        except Exception as exc:
            log.exception("import job %s failed unexpectedly", job_id)
            job = await jobs.fail(self.pool, job_id, f"internal error: {type(exc).__name__}: {exc}")
            if on_progress and job:
                on_progress(job)
            await self._log_end(job_id)
            return "failed"
        if status == "completed":
            # Autovacuum would get to it in a while; until then the planner plans searches
            # for the table as it was before millions of rows arrived.
            await jobs.analyze_customers(self.pool)
        if status is not None:
            await self._log_end(job_id)
        return status

    async def _log_end(self, job_id: int) -> None:
        """One record for the run's end, with the job's counters as fields."""
        job = await jobs.get(self.pool, job_id)
        counters = {k: job.get(k) for k in COUNTERS}
        log.log(logging.WARNING if job["status"] == "failed" else logging.INFO,
                "import job %s %s: %s", job_id, job["status"],
                job.get("error") or ", ".join(f"{k} {v}" for k, v in counters.items()),
                extra={"event": f"job_{job['status']}", "job_id": job_id, "status": job["status"],
                       "file": job.get("filename"), "error": job.get("error"), **counters})

    async def _supervise(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the cancellation
            # that stop() sends, and the loop would never end.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.worker_poll_seconds):
                    await self._wake.wait()
            self._wake.clear()
            try:
                job_id = await jobs.next_claimable(self.pool)
                if job_id is not None:
                    await self._run_guarded(job_id)
            except asyncio.CancelledError:
                raise
            except TRANSIENT as exc:
                log.warning("import runner: %s; trying again shortly", exc)
            except Exception:
                log.exception("import runner: unexpected error")

    async def _run_guarded(self, job_id: int) -> None:
        try:
            status = await self.run(job_id)
        except TRANSIENT as exc:
            log.warning("import job %s stopped (%s); it resumes from its checkpoint", job_id,
                        str(exc) or type(exc).__name__)
            return
        if status is not None:
            self.wake()  # maybe there is more to do

    def _drop_worker_processes(self, *, wait: bool = False) -> ProcessPoolExecutor | None:
        """Stop using the parse worker pool (a new one is made when needed); the old pool,
        shut down unless the caller will `wait` for that itself."""
        processes, self._processes = self._processes, None
        if processes is not None:
            # A pool stuck on a dead worker's half reply would hang interpreter exit.
            notice_dead_workers(processes)
            if not wait:
                processes.shutdown(wait=False, cancel_futures=True)
        return processes

    def _worker_processes(self) -> ProcessPoolExecutor:
        # Spawned, not forked: a fork of a process with threads and an event loop is unsafe.
        if self._processes is None:
            self._processes = ProcessPoolExecutor(pipelines(self.config), mp_context=multiprocessing.get_context("spawn"),
                                                  initializer=exit_with_parent, initargs=(os.getpid(),))
        return self._processes


async def runner_ctx(app: web.Application) -> AsyncIterator[None]:
    runner = JobRunner(app[config_key], app[pool_key], app[database_url_key],
                       on_batch=app[metrics_key].observe_batch)
    app[runner_key] = runner
    runner.start()
    yield
    await runner.stop()
