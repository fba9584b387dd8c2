"""GET /import/events as a browser sees it: a real HTTP stream read event by event."""
import asyncio
import dataclasses
import socket
import time

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from server.app import create_app
from server.events import LISTENER_NAME, MAX_PENDING_STATES, Event, Subscriber
from server.auth import store
from server.auth.roles import Role
from server.keys import events_key, pool_key
from server.generate import generate
from tests.importing import HEADER, TERMINAL, row, write_csv
from tests.processes import admin_headers
from tests.sse import open_stream


@pytest.fixture
def config(config):
    # Small batches: many commits, so an import of a few MB lasts a few seconds.
    return dataclasses.replace(config, batch_bytes=16 * 1024)


async def start(client, name: str) -> dict:
    resp = await client.post("/import", json={"path": name})
    assert resp.status == 202, await resp.text()
    return await resp.json()


async def test_the_stream_starts_with_a_snapshot_even_when_idle(client):
    stream = await open_stream(client.session, client.make_url("/import/events"))
    first = await stream.next()
    assert (first.event, first.id, first.job) == ("snapshot", "0", {"status": "idle"})
    stream.response.close()


@pytest.mark.slow
async def test_a_whole_import_as_the_page_sees_it(client, config):
    generate(config.import_dir / "live.csv", 12_000, seed=11, about_bytes=700)
    stream = await open_stream(client.session, client.make_url("/import/events"))
    seen = [(time.monotonic(), await stream.next())]
    job = await start(client, "live.csv")
    url = f"/import/jobs/{job['id']}"

    async def read_until(predicate):
        while True:
            event = await stream.next(timeout=15)
            seen.append((time.monotonic(), event))
            if predicate(event):
                return event

    await read_until(lambda e: e.event == "progress" and e.job["bytes_done"] > 1_500_000)
    assert (await client.post(f"{url}/pause")).status == 200
    await read_until(lambda e: e.event == "state" and e.job["status"] == "paused")
    await asyncio.sleep(1.5)  # paused: nothing needs to be said
    assert (await client.post(f"{url}/resume")).status == 200
    last = await read_until(lambda e: e.event == "state" and e.job["status"] in TERMINAL)
    stream.response.close()

    events = [e for _, e in seen]
    assert events[0].event == "snapshot"
    assert last.job["status"] == "completed" and last.job["rows_done"] == 12_000
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs), "event ids never go back"
    states = [e.job["status"] for e in events if e.event == "state"]
    assert states == ["queued", "running", "paused", "running", "completed"]
    # While running: at least one event a second. Always: at most ten a second.
    running_gaps = [t2 - t1 for (t1, e1), (t2, _) in zip(seen[1:], seen[2:]) if e1.job["status"] == "running"]
    assert max(running_gaps) < 1.5, running_gaps
    assert sum(running_gaps) > 1.5, "the import should have run for a few seconds"
    times = [t for t, _ in seen]
    assert all(b - a > 0.9 for a, b in zip(times, times[11:])), "more than ten events in a second"
    progress = [e.job["bytes_done"] for e in events if e.event == "progress"]
    assert progress == sorted(progress) and len(progress) > 10


async def test_a_reconnect_with_last_event_id_gets_a_fresh_snapshot_first(client, config):
    write_csv(config.import_dir / "a.csv", [HEADER, row(1, "A1")])
    stream = await open_stream(client.session, client.make_url("/import/events"))
    await stream.next()
    job = await start(client, "a.csv")
    last = (await stream.until(lambda e: e.event == "state" and e.job["status"] == "completed"))[-1]
    stream.response.close()
    again = await open_stream(client.session, client.make_url("/import/events"), last_event_id=last.id)
    first = await again.next()
    assert first.event == "snapshot"
    assert first.job == await (await client.get("/import")).json()
    assert first.job["id"] == job["id"] and first.seq == first.job["event_seq"] >= last.seq
    again.response.close()


@pytest.mark.slow
async def test_a_lost_listen_connection_is_replaced_and_clients_start_again(client, config, db):
    stream = await open_stream(client.session, client.make_url("/import/events"))
    assert (await stream.next()).event == "snapshot"
    killed = await db.value(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = %s AND datname = current_database()", (LISTENER_NAME,))
    assert killed == 1
    assert (await stream.next(timeout=10)).event == "snapshot"
    # And the new connection hears new jobs.
    write_csv(config.import_dir / "a.csv", [HEADER, row(1, "A1")])
    await start(client, "a.csv")
    await stream.until(lambda e: e.event == "state" and e.job["status"] == "completed", timeout=15)
    stream.response.close()


async def test_shutdown_ends_every_stream_cleanly(config):
    server = TestServer(create_app(config))
    await server.start_server()
    async with ClientSession(headers=await admin_headers(config.database_url)) as session:
        streams = [await open_stream(session, server.make_url("/import/events")) for _ in range(3)]
        for stream in streams:
            assert (await stream.next()).event == "snapshot"
        started = time.monotonic()
        await server.close()
        assert time.monotonic() - started < 5, "open streams held the shutdown up"
        for stream in streams:
            with pytest.raises(EOFError):
                await stream.next(timeout=5)
            stream.response.close()


def _event(kind: str, seq: int, status: str = "running") -> Event:
    return Event.of(kind, {"status": status, "event_seq": seq, "bytes_done": seq})


async def test_a_slow_client_holds_the_latest_progress_not_a_queue():
    subscriber = Subscriber()
    subscriber.offer(_event("snapshot", 1))
    for seq in range(2, 100_000):
        subscriber.offer(_event("progress", seq))
        if seq % 1000 == 0:
            subscriber.offer(_event("state", seq, "paused" if seq % 2000 else "running"))
    assert len(subscriber.states) <= MAX_PENDING_STATES
    sent = []
    while (event := subscriber.take()) is not None:
        sent.append(event)
    assert len(sent) <= 2 + MAX_PENDING_STATES
    assert [e.kind for e in sent[:1]] == ["snapshot"] and sent[-1].seq == 99_999
    assert [e.seq for e in sent] == sorted(e.seq for e in sent)
    subscriber.offer(_event("progress", 50))  # a late notification of the past
    assert subscriber.take() is None


@pytest.mark.slow
async def test_a_running_job_that_is_quiet_is_still_reported_every_second(client, db):
    # A job another process runs, stalled: its runner holds the lock but commits nothing.
    job_id = await db.value("INSERT INTO import_jobs (filename, path, status) "
                            "VALUES ('stuck.csv', '/nowhere/stuck.csv', 'running') RETURNING id")
    async with db.pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("SELECT pg_advisory_lock(7342, %s::int)", (job_id,))  # as runner.py's try_lock
        stream = await open_stream(client.session, client.make_url("/import/events"))
        snapshot = await stream.next()
        assert snapshot.event == "snapshot" and snapshot.job["status"] == "running"
        started = time.monotonic()
        beats = [await stream.next(timeout=2) for _ in range(3)]
        elapsed = time.monotonic() - started
        stream.response.close()
    assert [(b.event, b.id) for b in beats] == [("progress", snapshot.id)] * 3
    assert 2 <= elapsed < 4.5


async def test_one_stream_too_many_is_503_with_retry_after(client_as, config):
    client = await client_as("admin", app=create_app(dataclasses.replace(config, sse_max_streams=2)))
    streams = [await open_stream(client.session, client.make_url("/import/events")) for _ in range(2)]
    for stream in streams:
        assert (await stream.next()).event == "snapshot"
    resp = await client.get("/import/events", headers={"Accept": "text/event-stream"})
    assert resp.status == 503
    assert int(resp.headers["Retry-After"]) > 0
    assert "SSE_MAX_STREAMS" in (await resp.json())["error"]
    streams[0].response.close()  # a client leaves: its slot is free once the server notices
    for _ in range(50):
        resp = await client.get("/import/events", headers={"Accept": "text/event-stream"})
        if resp.status == 200:
            break
        await asyncio.sleep(0.1)
    assert resp.status == 200
    resp.close()
    streams[1].response.close()


async def test_one_viewer_cannot_hold_every_stream(client_as, config):
    """SSE_MAX_STREAMS=20: a viewer gets SSE_MAX_STREAMS_PER_USER (10 by default) streams, then
    429; an admin still gets one."""
    app = create_app(dataclasses.replace(config, sse_max_streams=20))
    viewer = await client_as("viewer", app=app)
    streams = []
    for _ in range(20):
        resp = await viewer.get("/import/events", headers={"Accept": "text/event-stream"})
        if resp.status != 200:
            break
        streams.append(resp)
    assert len(streams) == 10
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
    error = (await resp.json())["error"]
    assert viewer.principal_name in error and "SSE_MAX_STREAMS_PER_USER" in error
    admin_token = await store.create_token(app[pool_key], "test-stream-admin", Role.admin)
    resp = await viewer.get("/import/events", headers={"Accept": "text/event-stream",
                                                       "Authorization": f"Bearer {admin_token}"})
    assert resp.status == 200
    resp.close()
    for stream in streams:
        stream.close()


async def _a_client_that_does_not_read(server, authorization: str) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (server.host, server.port))
    await asyncio.get_running_loop().sock_sendall(
        sock, b"GET /import/events HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n"
        + f"Authorization: {authorization}\r\n\r\n".encode())
    return sock


async def _big_events_until(db, done, seconds: float) -> None:
    """About 6 KB events, as fast as a client may get them, until done() (a NOTIFY stays under 8 KB)."""
    job_id = await db.value("SELECT id FROM import_jobs WHERE filename = 'slow.csv'") or await db.value(
        "INSERT INTO import_jobs (filename, path, status) VALUES ('slow.csv', '/nowhere/slow.csv', 'paused') "
        "RETURNING id")
    deadline = time.monotonic() + seconds
    n = 0
    while not done():
        assert time.monotonic() < deadline, f"not within {seconds}s"
        n += 1
        await db.all("UPDATE import_jobs SET bytes_done = %s, error = repeat(md5(%s::text), 180) WHERE id = %s",
                     (n, n, job_id))
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_a_client_that_stops_reading_is_dropped_after_the_send_timeout(client_as, config, db):
    client = await client_as("admin", app=create_app(dataclasses.replace(config, sse_send_timeout_seconds=2)))
    hub = client.app[events_key]
    sock = await _a_client_that_does_not_read(client.server, f"Bearer {client.token}")
    await _big_events_until(db, lambda: hub.subscribers, 10)
    # Its buffers fill within seconds; two more and it is dropped.
    await _big_events_until(db, lambda: not hub.subscribers, 40)
    with pytest.raises(ConnectionResetError):  # what it was sent, then the end of the connection
        while await asyncio.get_running_loop().sock_recv(sock, 65536):
            pass
    sock.close()


@pytest.mark.slow
async def test_shutdown_does_not_wait_for_a_client_that_stopped_reading(config, db):
    server = TestServer(create_app(dataclasses.replace(config, sse_send_timeout_seconds=120)))
    await server.start_server()
    hub = server.app[events_key]
    sock = await _a_client_that_does_not_read(server, (await admin_headers(config.database_url))["Authorization"])
    flooded_by = time.monotonic() + 15  # (or sooner: once the server's write to it waits)
    await _big_events_until(db, lambda: any(getattr(s, "sending", False) for s in hub.subscribers)
                            or time.monotonic() > flooded_by, 60)
    started = time.monotonic()
    await server.close()
    assert time.monotonic() - started < 5, "a stalled stream held the shutdown up"
    sock.close()
