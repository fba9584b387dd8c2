"""Import jobs as the API and the CLI see them (aiopg). Domain errors, not HTTP ones."""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiopg
import psycopg2.errors
from psycopg2.extras import Json

from ..errors import Conflict, DomainError, NotFound
from ..sqlfiles import queries

SQL = queries("jobs")
ACTIVE = ("queued", "running", "paused")
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
    async with pool.acquire() as conn, conn.cursor() as cur:
        try:
            await cur.execute(SQL["create"], {"filename": filename, "path": str(path),
                                              "bytes_total": bytes_total, "created_by": created_by,
                                              "options": Json(options or {})})
        except psycopg2.errors.UniqueViolation:
            active = await _active(cur)
            if active is None:  # it ended in between: let the caller try again
                raise
            raise JobActive(active[4]) from None
        return (await cur.fetchone())[0]


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


async def fail(pool: aiopg.Pool, job_id: int, error: str) -> dict | None:
    return await _one(pool, SQL["fail"], {"id": job_id, "error": error})


async def analyze_customers(pool: aiopg.Pool) -> None:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(SQL["analyze_customers"])


async def _one(pool: aiopg.Pool, query: str, params: dict):
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(query, params)
        row = await cur.fetchone()
        return None if row is None else row[0]
