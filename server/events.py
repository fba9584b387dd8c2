"""Progress fan-out: PostgreSQL LISTEN/NOTIFY -> every SSE subscriber of this process.

Each process LISTENs on one dedicated connection; the database sends a NOTIFY
at every commit that changes a job (the trigger in sql/schema.sql), whoever made it, so
a page connected to any process sees a job that any other process runs.

A subscriber is not a queue: it keeps the latest progress and the few state
changes not yet sent, so a slow client costs the same memory as a fast one
and simply sees fewer, fresher progress events.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
import weakref
from collections.abc import AsyncIterator

import aiopg
import psycopg2
from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from .importer import jobs
from .sqlfiles import queries
from .auth.middleware import principal
from .capacity import Busy
from .keys import config_key, database_url_key, events_key, pool_key, runner_key
from .tasks import cancel_and_wait

log = logging.getLogger(__name__)
SQL = queries("jobs")

LISTENER_NAME = "csv-import events"  # application_name, to find it in pg_stat_activity
MIN_GAP = 0.1          # at most ten events a second per client
HEARTBEAT = 1.0        # at least one progress event a second while a job runs
PING_INTERVAL = 15.0   # comment ping that keeps idle streams open through proxies
MAX_PENDING_STATES = 16
BACKOFF = (0.5, 1, 2, 5, 10)
STREAMS_RETRY_AFTER = 5  # seconds: streams end all the time, a slot is soon free
IDLE = {"status": "idle"}


@dataclasses.dataclass(frozen=True)
class Event:
    kind: str       # snapshot | state | progress
    seq: int        # the SSE id: the job's event_seq, a global sequence
    status: str
    data: str       # the job JSON, encoded once for every subscriber

    @classmethod
    def of(cls, kind: str, job: dict | None) -> Event:
        job = job or IDLE
        return cls(kind, int(job.get("event_seq", 0)), job["status"], json.dumps(job))


class Subscriber:
    """What one SSE client still has to be sent, bounded whatever its speed."""

    def __init__(self, holder: str = "") -> None:
        self.holder = holder  # who it streams to (Principal.label): their streams are counted together
        self.snapshot: Event | None = None
        self.states: collections.deque[Event] = collections.deque(maxlen=MAX_PENDING_STATES)
        self.progress: Event | None = None
        self.last: Event | None = None  # the last event sent
        self.closed = False
        self.changed = asyncio.Event()
        self.sending = False  # inside a write that waits for the client to read
        self.transport: asyncio.Transport | None = None

    def offer(self, event: Event) -> None:
        if event.kind == "snapshot":
            # Newer than what it read? Keep those; everything older is in the snapshot.
            self.snapshot = event
            self.states = collections.deque((s for s in self.states if s.seq > event.seq),
                                            maxlen=MAX_PENDING_STATES)
            if self.progress is not None and self.progress.seq <= event.seq:
                self.progress = None
        elif event.seq <= self._newest_seq():
            return  # a late NOTIFY of something already sent or superseded
        elif event.kind == "state":
            self.states.append(event)
            self.progress = None  # the state event carries the newer figures
        else:
            self.progress = event
        self.changed.set()

    def take(self) -> Event | None:
        """The next event to send: snapshot, then state changes in order, then progress."""
        event = None
        if self.snapshot is not None:
            event, self.snapshot = self.snapshot, None
        elif self.states:
            event = self.states.popleft()
        elif self.progress is not None:
            event, self.progress = self.progress, None
        if event is not None:
            self.last = event
        return event

    def pending(self) -> bool:
        return self.snapshot is not None or bool(self.states) or self.progress is not None

    def close(self) -> None:
        self.closed = True
        self.changed.set()
        if self.sending and self.transport is not None:
            # A client that does not read would hold its write, and the shutdown, for up
            # to the send timeout: it loses the connection now instead.
            self.transport.abort()

    def _newest_seq(self) -> int:
        seqs = [e.seq for e in (self.snapshot, self.progress, self.last) if e is not None]
        seqs += [e.seq for e in self.states]
        return max(seqs, default=-1)


class EventHub:
    """This process's LISTEN connection and its SSE subscribers."""

    def __init__(self, app: web.Application):
        self.app = app
        self.subscribers: set[Subscriber] = set()
        self.streams: weakref.WeakSet[EventSourceResponse] = weakref.WeakSet()
        self.listening = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._failures = 0

    async def start(self, first_connect_timeout: float = 10) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="import-events")
        # Events of a job queued right after startup must not be missed.
        await _wait(self.listening, first_connect_timeout)

    async def stop(self) -> None:
        self.stop_streams()
        await cancel_and_wait(self._task)

    def problem(self) -> str | None:
        """Why this process would miss job events now, or None while it listens."""
        if self._task is None or self._task.done():
            return "the event listener has stopped"
        if not self.listening.is_set():
            return "no LISTEN connection to the database (reconnecting)"
        return None

    def stop_streams(self) -> None:
        """End every SSE stream cleanly (at shutdown, before the server waits for handlers)."""
        for subscriber in list(self.subscribers):
            subscriber.close()
        for stream in list(self.streams):
            with contextlib.suppress(RuntimeError):
                stream.stop_streaming()

    def publish(self, event: Event) -> None:
        for subscriber in self.subscribers:
            subscriber.offer(event)

    async def serve(self, request: web.Request) -> EventSourceResponse:
        """One client's stream: a snapshot read from the database, then live events.

        At most SSE_MAX_STREAMS at once (503 with Retry-After beyond), of
        which SSE_MAX_STREAMS_PER_USER for one user or token (429 beyond: one
        viewer cannot hold every stream), and a client that takes longer than
        SSE_SEND_TIMEOUT_SECONDS to accept an event loses its connection: it
        is not reading, and its slot is someone else's.
        """
        config = self.app[config_key]
        holder = principal(request).label
        if len(self.subscribers) >= config.sse_max_streams:
            raise Busy(f"this server already streams to {config.sse_max_streams} clients "
                       "(SSE_MAX_STREAMS); try again shortly", retry_after=STREAMS_RETRY_AFTER, status=503)
        if sum(s.holder == holder for s in self.subscribers) >= config.sse_max_streams_per_user:
            raise Busy(f"{holder} already has {config.sse_max_streams_per_user} event streams open on this "
                       "server (SSE_MAX_STREAMS_PER_USER): close a page that shows imports, or try again "
                       "shortly", retry_after=STREAMS_RETRY_AFTER)
        subscriber = Subscriber(holder)
        self.subscribers.add(subscriber)  # before the read: nothing falls in between
        try:
            # Read before the 200 goes out, so a database that is away is still an HTTP answer.
            subscriber.offer(Event.of("snapshot", await jobs.current(self.app[pool_key])))
            async with sse_response(request, ping_interval=PING_INTERVAL,
                                    send_timeout=config.sse_send_timeout_seconds) as stream:
                self.streams.add(stream)
                subscriber.transport = request.transport
                await _pump(request, stream, subscriber)
        finally:
            self.subscribers.discard(subscriber)
        return stream

    async def _listen_forever(self) -> None:
        while True:
            try:
                await self._listen()
            except (psycopg2.Error, OSError, asyncio.TimeoutError) as exc:
                log.warning("import events: no LISTEN connection (%s); retrying", exc)
            self.listening.clear()
            await asyncio.sleep(BACKOFF[min(self._failures, len(BACKOFF) - 1)])
            self._failures += 1

    async def _listen(self) -> None:
        dsn = self.app[database_url_key]
        async with aiopg.connect(dsn, application_name=LISTENER_NAME, timeout=10) as conn:
            async with conn.cursor() as cur:
                await cur.execute(SQL["listen_events"])
            self._failures = 0
            self.listening.set()
            # Whatever happened while nobody listened: every client starts again from the database.
            await self._resnapshot()
            while True:
                message = await conn.notifies.get()
                await self._dispatch(message.payload)

    async def _resnapshot(self) -> None:
        if self.subscribers:
            self.publish(Event.of("snapshot", await jobs.current(self.app[pool_key])))

    async def _dispatch(self, payload: str) -> None:
        """A notification names a job (sql/007): read it, and publish what it now is.

        The job read may be newer than the notification; a status other than the
        notified one makes it a state event, so no subscriber misses a change of
        status, and the newer event's own notification then finds nothing newer.
        """
        try:
            message = json.loads(payload)
            kind, job_id, status = message["event"], int(message["id"]), message["status"]
        except (ValueError, KeyError, TypeError):
            log.warning("import events: ignoring a malformed notification %.200r", payload)
            return
        try:
            job = await jobs.get(self.app[pool_key], job_id)
        except jobs.JobNotFound:
            return
        if job["status"] != status:
            kind = "state"
        event = Event.of(kind, job)
        self.publish(event)
        if event.kind == "state" and event.status in ("queued", "running"):
            # A job queued or resumed by another process: this runner may take it at once.
            runner = self.app.get(runner_key)
            if runner is not None:
                runner.wake()


async def _pump(request: web.Request, stream: EventSourceResponse, subscriber: Subscriber) -> None:
    loop = asyncio.get_running_loop()
    last_sent = -MIN_GAP
    while not subscriber.closed and stream.is_connected() and not _gone(request):
        # Wakes at least once a second: for the heartbeat, and to notice a client that left.
        await _wait(subscriber.changed, HEARTBEAT)
        if subscriber.closed or _gone(request):
            return
        await asyncio.sleep(max(last_sent + MIN_GAP - loop.time(), 0))  # meanwhile, progress coalesces
        subscriber.changed.clear()
        event = subscriber.take() or _heartbeat(subscriber, loop.time() - last_sent)
        if event is None:
            continue
        subscriber.sending = True
        try:
            await stream.send(event.data, id=str(event.seq), event=event.kind)
        except (TimeoutError, ConnectionError):
            return  # a client that stopped reading (its connection is aborted) or has gone
        finally:
            subscriber.sending = False
        last_sent = loop.time()
        if subscriber.pending():
            subscriber.changed.set()  # more to send: next round, after the gap


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """event.wait() for at most `seconds`. Not wait_for: on 3.11 it can swallow a cancellation."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


def _heartbeat(subscriber: Subscriber, quiet_for: float) -> Event | None:
    """The latest state again as progress, when a running job has been quiet for a second."""
    last = subscriber.last
    if last is None or last.status != "running" or quiet_for < HEARTBEAT:
        return None
    return Event("progress", last.seq, last.status, last.data)


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def events_ctx(app: web.Application) -> AsyncIterator[None]:
    hub = EventHub(app)
    app[events_key] = hub
    await hub.start()
    yield
    await hub.stop()


async def stop_streams(app: web.Application) -> None:
    """on_shutdown: SSE streams end cleanly instead of holding the shutdown up."""
    hub = app.get(events_key)
    if hub is not None:
        hub.stop_streams()
