"""Waiting for what a test must see, rather than for a fixed time."""
from __future__ import annotations

import asyncio
import inspect


async def eventually(predicate, timeout: float = 15, interval: float = 0.02):
    """Until `predicate()` (a plain or an async function) returns something true, which is
    returned; fails after `timeout` seconds, naming the predicate."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := await found if inspect.isawaitable(found := predicate()) else found):
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {predicate.__name__}"
        await asyncio.sleep(interval)
    return result
