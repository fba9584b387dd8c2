"""DATABASE_READ_URL: customer reads (pages, search, export, one customer) from a
streaming standby, with three rules (docs/scaling.md, "Reads from a standby"):

- Your own writes: after a request that changed something (any method but GET, HEAD
  and OPTIONS, answered below 400), the same principal (user or token) reads the
  primary until the standby has replayed past that moment. The watch below samples
  the primary's WAL position, then the standby's replay position, every second; once
  the standby has replayed what the primary had written at a sample taken after the
  write, the write is on the standby. A client may also ask for the primary itself
  with `Cache-Control: no-cache` (the standby is a cache of sorts), which works across
  processes behind a proxy, where the first rule (kept per process) does not.
- A standby that does not answer the watch (within PROBE_TIMEOUT) serves no reads
  until it answers again: reads go to the primary. Requests never wait for a dead
  standby to time out; only the watch does.
- Its replication lag, in bytes and seconds, is in /metrics.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiopg
import psycopg2

from .sqlfiles import queries

log = logging.getLogger(__name__)
SQL = queries("replica")
PROBE_SECONDS = 1.0   # how often the standby is looked at
PROBE_TIMEOUT = 2.0   # a standby slower than this to answer is taken for gone
READ_TIMEOUT = 10.0   # the standby pool's own per-operation timeout (aiopg's `timeout`)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class StandbyState:
    up: bool = False
    in_recovery: bool | None = None
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    # The monotonic time of the latest primary sample the standby had replayed when looked at:
    # every write that had committed by then is on the standby.
    replayed_as_of: float = float("-inf")


class Reads:
    """Which pool a read uses; watches the standby for it."""

    def __init__(self, primary: aiopg.Pool, standby: aiopg.Pool, *, clock=time.monotonic) -> None:
        self.primary = primary
        self.standby = standby
        self.state = StandbyState()
        self.served = {"standby": 0, "primary": 0}
        self._clock = clock
        self._last_write: dict[str, float] = {}

    def pool_for(self, who: str | None, *, fresh: bool = False) -> aiopg.Pool:
        """The standby's pool unless it is down, `fresh` is asked for, or `who` wrote since
        the standby last caught up."""
        wrote = self._last_write.get(who) if who is not None else None
        use_standby = (self.state.up and not fresh
                       and (wrote is None or wrote <= self.state.replayed_as_of))
        target = "standby" if use_standby else "primary"
        self.served[target] += 1
        return self.standby if use_standby else self.primary

    def wrote(self, who: str) -> None:
        """`who` has just committed a change: their reads go to the primary until it is replayed."""
        self._last_write[who] = self._clock()

    async def watch(self) -> None:
        while True:
            try:
                await self.look()
            except Exception:  # a surprise must not end the watch: reads would stay where they are
                log.exception("the read standby's watch failed; it looks again shortly")
                self.state = StandbyState(replayed_as_of=self.state.replayed_as_of)
            await asyncio.sleep(PROBE_SECONDS)

    async def look(self) -> None:
        sampled_at = self._clock()
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                primary_lsn = await _value(self.primary, SQL["primary_position"])
                in_recovery, replayed, lag_seconds = await _row(self.standby, SQL["standby_state"])
        except (psycopg2.Error, OSError, TimeoutError) as exc:
            if self.state.up:
                log.warning("the read standby does not answer (%s): reads go to the primary",
                            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            self.state = StandbyState(replayed_as_of=self.state.replayed_as_of)
            await self.standby.clear()  # connections to a server that went away are of no use
            return
        if not self.state.up:
            log.info("the read standby answers: customer reads go to it")
        caught_up = not in_recovery or replayed >= primary_lsn
        self.state = StandbyState(
            up=True, in_recovery=in_recovery, lag_bytes=max(0, int(primary_lsn - replayed)) if in_recovery else 0,
            lag_seconds=float(lag_seconds),
            replayed_as_of=sampled_at if caught_up else self.state.replayed_as_of)
        # Writers the standby has caught up with need no entry any more.
        self._last_write = {w: t for w, t in self._last_write.items() if t > self.state.replayed_as_of}


async def _row(pool: aiopg.Pool, query: str) -> tuple:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(query)
        return await cur.fetchone()


async def _value(pool: aiopg.Pool, query: str):
    return (await _row(pool, query))[0]


@contextlib.asynccontextmanager
async def standby_reads(primary: aiopg.Pool, read_url: str) -> AsyncIterator[Reads]:
    """A pool on the standby (none opened until needed: a standby that is down does not stop
    the service starting) and its watch, for as long as the block runs."""
    async with aiopg.create_pool(read_url, minsize=0, maxsize=20, timeout=READ_TIMEOUT) as standby:
        reads = Reads(primary, standby)
        await reads.look()  # the first reads know where to go
        watch = asyncio.create_task(reads.watch(), name="read standby watch")
        try:
            yield reads
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
