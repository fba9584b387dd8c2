"""Customer history: what changed, when, by what (docs/history.md).

The rows are written where the changes are made: by the import's batch
statements and the undo's (set-based, with job and line), and by a row
trigger for every other writer (the API, the page, a reporting tool's
UPDATE). This module reads them, and prunes those older than HISTORY_DAYS in
the background, a slice at a time, so no long transaction holds the table.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import aiopg
from aiohttp import web

from .config import Config
from .keys import config_key, pool_key
from .sqlfiles import queries
from .tasks import cancel_and_wait

log = logging.getLogger(__name__)
SQL = queries("history")
PRUNE_SLICE = 10_000


async def page(pool: aiopg.Pool, customer_id: int, *, limit: int, after: int | None) -> tuple[list[dict], int | None]:
    """A page of a customer's history, newest first, and the cursor of the next (None on the last).

    A customer that is gone keeps its history: nothing here asks customers.
    """
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(SQL["page"], {"id": customer_id, "after": after, "limit": limit + 1})
        rows = await cur.fetchall()
    items = [{"at": at.isoformat(), "action": action, "by": by, "job_id": job_id, "line_no": line_no,
              "changes": changes} for _, at, action, by, job_id, line_no, changes in rows[:limit]]
    return items, (rows[limit - 1][0] if len(rows) > limit else None)


async def prune(pool: aiopg.Pool, days: int, slice_rows: int = PRUNE_SLICE) -> int:
    """Delete history older than `days`, a slice per statement; how many rows went."""
    total = 0
    while True:
        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(SQL["prune_slice"], {"days": days, "slice": slice_rows})
            gone = cur.rowcount
        total += gone
        if gone < slice_rows:
            return total
        await asyncio.sleep(0)  # let requests in between slices


async def _prune_forever(pool: aiopg.Pool, config: Config) -> None:
    while True:
        try:
            gone = await prune(pool, config.history_days)
            if gone:
                log.info("pruned %s history rows older than %s days", gone, config.history_days)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("history pruning failed; trying again later")
        await asyncio.sleep(config.history_prune_seconds)


async def pruning_ctx(app: web.Application) -> AsyncIterator[None]:
    """The pruning task, owned by the app: started with it, cancelled and awaited at cleanup."""
    task = asyncio.create_task(_prune_forever(app[pool_key], app[config_key]), name="history-pruning")
    yield
    with contextlib.suppress(Exception):
        await cancel_and_wait(task)
