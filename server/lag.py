"""Event-loop lag: how late a 10 ms sleep wakes up, as p50/p99 over recent samples."""
from __future__ import annotations

import asyncio
import collections
import statistics
from collections.abc import AsyncIterator

from aiohttp import web

from .keys import lag_key
from .tasks import cancel_and_wait

INTERVAL = 0.01


class LoopLag:
    def __init__(self, window: int = 6000):
        self.samples: collections.deque[float] = collections.deque(maxlen=window)
        self.times: collections.deque[float] = collections.deque(maxlen=window)  # when each was taken
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._sample(), name="loop-lag")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    def percentiles(self, last_seconds: float | None = None) -> dict[str, float | None]:
        """p50/p99 in ms over the window, or over the samples of the last `last_seconds`."""
        samples = list(self.samples)
        if last_seconds is not None:
            since = asyncio.get_running_loop().time() - last_seconds
            samples = [lag for lag, at in zip(self.samples, self.times) if at >= since]
        if len(samples) < 2:
            return {"p50": None, "p99": None}
        cuts = statistics.quantiles(samples, n=100, method="inclusive")
        return {"p50": round(cuts[49] * 1000, 2), "p99": round(cuts[98] * 1000, 2)}

    async def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(INTERVAL)
            self.samples.append(max(loop.time() - start - INTERVAL, 0.0))
            self.times.append(loop.time())


async def lag_ctx(app: web.Application) -> AsyncIterator[None]:
    """Samples the loop for the app's lifetime, for /healthz and the benchmark."""
    lag = LoopLag()
    app[lag_key] = lag
    lag.start()
    yield
    await lag.stop()
