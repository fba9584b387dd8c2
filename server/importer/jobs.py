"""Every statement on an import job's row: as the API and the CLI see it (aiopg), and as
the engine runs it (sync, on the job's own connection). Domain errors, not HTTP ones."""
from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import aiopg
import psycopg2.errors
from psycopg2.extras import Json

from ..errors import Conflict, DomainError, NotFound
from ..sqlfiles import queries
from .header import Header
from .hosts import leave_to_another_host

SQL = queries("jobs")
ACTIVE = ("queued", "running", "paused")
CREATE_ATTEMPTS = 3  # a job that ends between the refusal and the look at it frees the way
# Which statuses each control may leave from, and where it goes.
TRANSITIONS = {
    "pause": (("queued", "running"), "paused"),
    "resume": (("paused",), "running"),
    "cancel": (ACTIVE, "cancelled"),
}


class JobNotFound(NotFound):
    def __init__(self, job_id: int):
        super().__init__(f"there is no import job {job_id}")
        self.job_id = job_id


class JobActive(Conflict):
    """Another job is queued, running or paused."""

    def __init__(self, job: dict):
        super().__init__(f"import job {job['id']} is {job['status']}; one import at a time")
        self.job = job

    def body(self) -> dict:
        return {"error": str(self), "job": self.job}


class NoFileOfItsOwn(DomainError):
    """An undo read no file: its rejects are customers, which make no file to import again."""

    status = 422

    def __init__(self, job_id: int):
        super().__init__(f"import job {job_id} is an undo: its rejects are customers it left alone, "
                         "not records of a file; ask for them with format=lines")


class TransitionNotAllowed(Conflict):
    def __init__(self, job: dict, action: str):
        super().__init__(f"cannot {action} import job {job['id']}: it is {job['status']}")
        self.job = job

    def body(self) -> dict:
        return {"error": str(self), "job": self.job}


async def create(pool: aiopg.Pool, *, filename: str, path: Path, bytes_total: int,
                 created_by: str | None = None, options: dict | None = None) -> dict:
    """The new queued job; JobActive while another job is queued, running or paused."""
    params = {"filename": filename, "path": str(path), "bytes_total": bytes_total, "created_by": created_by,
              "options": Json(options or {})}
    async with pool.acquire() as conn, conn.cursor() as cur:
        for attempt in range(CREATE_ATTEMPTS):
            try:
                await cur.execute(SQL["create"], params)
                return (await cur.fetchone())[0]
            except psycopg2.errors.UniqueViolation:
                active = await _active(cur)
                if active is not None:
                    raise JobActive(active[4]) from None
                # The job in the way ended before it could be named: the way is free now.
                if attempt == CREATE_ATTEMPTS - 1:
                    raise
    raise AssertionError("unreachable")


async def active(pool: aiopg.Pool) -> tuple[int, str, str, str | None, dict] | None:
    """(id, path, status, worker, job) of the active job, if any."""
    async with pool.acquire() as conn, conn.cursor() as cur:
        return await _active(cur)


async def _active(cur):
    await cur.execute(SQL["active"])
    return await cur.fetchone()


async def current(pool: aiopg.Pool) -> dict | None:
    return await _one(pool, SQL["current"], {})


async def get(pool: aiopg.Pool, job_id: int) -> dict:
    job = await _one(pool, SQL["by_id"], {"id": job_id})
    if job is None:
        raise JobNotFound(job_id)
    return job


async def page(pool: aiopg.Pool, *, limit: int, before: int | None) -> list[dict]:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(SQL["page"], {"limit": limit, "before": before})
        return [row[0] for row in await cur.fetchall()]


async def control(pool: aiopg.Pool, job_id: int, action: str) -> dict:
    allowed_from, to = TRANSITIONS[action]
    job = await _one(pool, SQL["transition"], {"id": job_id, "to": to, "from": list(allowed_from)})
    if job is None:
        raise TransitionNotAllowed(await get(pool, job_id), action)
    return job


async def recent(pool: aiopg.Pool, job_id: int) -> list[dict]:
    rows = await _one(pool, SQL["recent"], {"id": job_id})
    if rows is None:
        raise JobNotFound(job_id)
    return rows


async def rejects(pool: aiopg.Pool, job_id: int, page_size: int = 1000) -> AsyncIterator[tuple]:
    """Every reject of a job, in line order, a page at a time (constant memory)."""
    await get(pool, job_id)
    after = 0
    while True:
        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(SQL["rejects_page"], {"id": job_id, "after": after, "limit": page_size})
            rows = await cur.fetchall()
        for row in rows:
            yield row[0], row[1], row[2], bytes(row[3])
        if len(rows) < page_size:
            return
        after = rows[-1][0]


async def file_header(pool: aiopg.Pool, job_id: int) -> tuple[list[str], dict]:
    """(the file's header columns, the job's effective options); NoFileOfItsOwn for an undo."""
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(SQL["file_header"], {"id": job_id})
        row = await cur.fetchone()
    if row is None:
        raise JobNotFound(job_id)
    if row[2] == "undo":
        raise NoFileOfItsOwn(job_id)
    return list(row[0] or []), row[1] or {}


async def reject_reasons(pool: aiopg.Pool, job_id: int, limit: int) -> list[dict]:
    """The commonest kinds of reject of a job, most rows first."""
    await get(pool, job_id)
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(SQL["reject_reasons"], {"id": job_id, "limit": limit})
        return [{"reason": kind, "rows": rows, "first_line": first_line}
                for kind, rows, first_line in await cur.fetchall()]


async def next_claimable(pool: aiopg.Pool) -> int | None:
    return await _one(pool, SQL["next_claimable"], {})


async def runner_alive(pool: aiopg.Pool, job_id: int) -> bool:
    """Whether some process holds the job's lock, so runs it now."""
    return bool(await _one(pool, SQL["runner_alive"], {"id": job_id}))


@dataclasses.dataclass
class JobRun:
    """One run of a claimed job: what it reads, from where, and how (the engine carries it)."""
    job_id: int
    worker: str
    path: Path
    data_offset: int | None
    bytes_done: int
    line_no: int
    fingerprint: dict | None
    rejected: int
    options: dict  # effective, as detected or chosen when the job was created
    kind: str = "import"     # or "undo" (undo.py)
    undoes: int | None = None

    @property
    def dry_run(self) -> bool:
        return bool(self.options.get("dry_run"))


# The running job's own row, on its own connection (sync psycopg2, the engine's thread).

def claim(conn, job_id: int, worker: str, file_wait_seconds: float) -> JobRun | None:
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
    return JobRun(job_id, worker, Path(path), data_offset, bytes_done, line_no, fp, rejected, options or {},
                  kind, undoes)


def set_header(conn, job_id: int, header: Header, found: dict) -> None:
    _now(conn, SQL["set_header"], {
        "id": job_id, "data_offset": header.data_offset, "data_line": header.data_line,
        "bytes_total": found["size"], "columns": list(header.columns),
        "unknown": list(header.unknown), "fingerprint": Json(found),
    })


def ranges(conn, job_id: int) -> list[tuple]:
    """The job's range plan: (start, end, first line, done offset, done line, done), in file order."""
    with conn.cursor() as cur:
        cur.execute(SQL["ranges"], {"id": job_id})
        rows = cur.fetchall()
    conn.commit()
    return rows


def add_ranges(conn, job_id: int, plan: list[tuple[int, int, int, int, int]]) -> None:
    """Keep a plan: (start, end, first line, done offset, done line) per range, in one transaction."""
    with conn.cursor() as cur:
        for start, end, first_line, done_offset, done_line in plan:
            cur.execute(SQL["add_range"], {"id": job_id, "start_offset": start, "end_offset": end,
                                           "first_line": first_line, "done_offset": done_offset,
                                           "done_line": done_line})
    conn.commit()


def status(conn, job_id: int) -> str | None:
    return _now(conn, SQL["status"], {"id": job_id})


def release(conn, job_id: int, worker: str) -> None:
    _now(conn, SQL["release"], {"id": job_id, "worker": worker})


def fail(conn_or_pool, job_id: int, error: str):
    """The job failed, with a message for the user: its row as JSON (None: no such job).

    On the engine's own connection it runs now; on the app's pool it is awaited."""
    params = {"id": job_id, "error": error}
    if isinstance(conn_or_pool, aiopg.Pool):
        return _one(conn_or_pool, SQL["fail"], params)
    return _now(conn_or_pool, SQL["fail"], params)


def _now(conn, query: str, params: dict):
    """The first column of the statement's row (None without one), committed."""
    with conn.cursor() as cur:
        cur.execute(query, params)
        row = cur.fetchone() if cur.description else None
    conn.commit()
    return None if row is None else row[0]


async def analyze_customers(pool: aiopg.Pool) -> None:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(SQL["analyze_customers"])


async def _one(pool: aiopg.Pool, query: str, params: dict):
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(query, params)
        row = await cur.fetchone()
        return None if row is None else row[0]
