"""Clients that send a request slowly or never finish it are let go, as a front server
lets them go; uploads keep their own pace (UPLOAD_STALL_SECONDS, tests/test_upload_pace.py)."""
import asyncio
import dataclasses
import time

from server.app import create_app
from tests.processes import Serve

HEAD_SECONDS = 2


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """Everything the server sends until it closes the connection, which it must do in time."""
    async with asyncio.timeout(seconds):
        return await reader.read()


async def test_a_request_head_that_never_ends_is_closed(db_url, tmp_path):
    async with Serve(tmp_path, DATABASE_URL=db_url, REQUEST_HEADER_TIMEOUT_SECONDS=str(HEAD_SECONDS)) as serve:
        silent = await asyncio.open_connection("127.0.0.1", serve.port)
        trickling = await asyncio.open_connection("127.0.0.1", serve.port)
        started = time.monotonic()
        silent[1].write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")

        async def trickle():  # a byte now and then never completes the head, and buys no time
            trickling[1].write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            while not trickling[1].is_closing():
                trickling[1].write(b"a")
                await asyncio.sleep(0.2)

        trickler = asyncio.create_task(trickle())
        assert await closed_within(silent[0], HEAD_SECONDS + 8) == b""
        assert await closed_within(trickling[0], HEAD_SECONDS + 8) == b""
        assert time.monotonic() - started >= HEAD_SECONDS - 0.5
        trickler.cancel()
        for _, writer in (silent, trickling):
            writer.close()


async def test_a_body_that_never_arrives_gets_408_and_the_connection_closes(aiohttp_server, config):
    server = await aiohttp_server(create_app(dataclasses.replace(config, request_body_timeout_seconds=1)))
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nname=a")
    # Closed soon after the second the body may take, not after aiohttp's 10 s of lingering.
    answer = await closed_within(reader, 5)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    assert b"REQUEST_BODY_TIMEOUT_SECONDS" in body
    writer.close()


async def test_an_upload_that_pauses_longer_than_the_body_timeout_keeps_its_own_pace(client_as, config):
    client = await client_as("admin", app=create_app(dataclasses.replace(config, request_body_timeout_seconds=0.5)))
    data = b"Customer Id,First Name\n" + b"".join(b"C%05d,Ann\n" % i for i in range(1000))
    resp = await client.post("/uploads", headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(len(data))})
    assert resp.status == 201

    async def slow_body():
        yield data[:100]
        await asyncio.sleep(1.5)  # the client's pause is what is tested
        yield data[100:]

    resp = await client.patch(resp.headers["Location"], data=slow_body(), headers={
        "Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream",
        "Content-Length": str(len(data))})
    assert resp.status == 204, await resp.text()
    assert resp.headers["Upload-Offset"] == str(len(data))
