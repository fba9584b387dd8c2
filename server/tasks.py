"""Stopping the app's background tasks."""
from __future__ import annotations

import asyncio


async def cancel_and_wait(task: asyncio.Task | None) -> None:
    """Cancel a task and wait until it has really ended.

    Cancelled again every second: aiopg waits with asyncio.wait_for, which on
    Python 3.11 can swallow a cancellation that arrives just as a query
    completes, and a task that lost its cancellation would run on forever.
    """
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1)
