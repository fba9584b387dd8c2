"""A request body must keep coming: silence and a trickle are both dropped, by multipart
and by tus alike; and a tus PATCH obeys the upload limits whatever its headers say
(a body of no stated length still keeps the free-space floor; no Content-Encoding)."""
from __future__ import annotations

import asyncio
import dataclasses
import gzip
import shutil

from server.app import create_app
from server.upload_core.body import MIN_PACE_BYTES

from .test_tus import CSV, TUS, create, files_of, patch
from .test_uploads import partials, stored

TRICKLE = b"x" * 50  # every 0.2 s: 250 bytes a second, far under MIN_PACE_BYTES a minute
SMALL_PART = b'--raw\r\nContent-Disposition: form-data; name="note"\r\n\r\nx\r\n'


async def _trickle_until_answered(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                                  piece: bytes, seconds: float) -> bytes:
    """Send `piece` every 0.2 s until the server answers; its answer (b"" if none in time)."""
    answer = asyncio.ensure_future(reader.read(3000))
    deadline = asyncio.get_running_loop().time() + seconds
    while not answer.done() and asyncio.get_running_loop().time() < deadline:
        writer.write(piece)
        try:
            await writer.drain()
        except ConnectionError:
            break
        await asyncio.wait({answer}, timeout=0.2)
    try:
        return await asyncio.wait_for(answer, 2)
    except TimeoutError:
        return b""
    finally:
        writer.close()


async def test_a_multipart_body_that_trickles_is_dropped(client_as, config, db):
    """Small parts, one every 0.2 s: never silent for UPLOAD_STALL_SECONDS, and up to
    MULTIPART_MAX_PARTS of them (1000) would have held the upload's slot for minutes."""
    app = create_app(dataclasses.replace(config, upload_stall_seconds=1, multipart_max_parts=1000))
    client = await client_as("admin", app=app)
    assert MIN_PACE_BYTES > len(SMALL_PART) * 5 * 3  # what the trickle brings in 3 s: not enough
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(("POST /import HTTP/1.1\r\nHost: localhost\r\n"
                  f"Authorization: Bearer {client.token}\r\n"
                  "Content-Type: multipart/form-data; boundary=raw\r\nContent-Length: 10000000\r\n\r\n").encode())
    started = asyncio.get_running_loop().time()
    answer = await _trickle_until_answered(reader, writer, SMALL_PART, seconds=15)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"less than 65536 bytes in 1 seconds (UPLOAD_STALL_SECONDS)" in answer
    assert asyncio.get_running_loop().time() - started < 10
    assert stored(config) == [] and partials(config) == []
    assert await db.value("SELECT count(*) FROM import_jobs") == 0


async def _raw_patch(client, url: str, headers: dict[str, str], first: bytes):
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    lines = [f"PATCH {url} HTTP/1.1", "Host: localhost", "Tus-Resumable: 1.0.0", "Upload-Offset: 0",
             "Content-Type: application/offset+octet-stream", *(f"{k}: {v}" for k, v in headers.items()),
             *(f"{k}: {v}" for k, v in client.session.headers.items())]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + first)
    await writer.drain()
    return reader, writer


async def test_a_tus_patch_that_trickles_is_408_and_keeps_what_arrived(client_as, config):
    client = await client_as("admin", app=create_app(dataclasses.replace(config, upload_stall_seconds=1)))
    url = await create(client, len(CSV))
    reader, writer = await _raw_patch(client, url, {"Content-Length": str(len(CSV))}, CSV[:1000])
    answer = await _trickle_until_answered(reader, writer, TRICKLE, seconds=15)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"less than 65536 bytes" in answer
    # What did arrive counts (tus core: keep what came), and the upload is free to go on.
    offset = int((await client.head(url, headers=TUS)).headers["Upload-Offset"])
    assert 1000 <= offset < len(CSV)
    resp = await patch(client, url, offset, CSV[offset:])
    assert resp.status == 204 and resp.headers["Upload-Offset"] == str(len(CSV))


async def test_a_gzip_encoded_tus_patch_is_415_and_stores_nothing(client, config):
    url = await create(client, len(CSV))
    body = gzip.compress(CSV)
    resp = await patch(client, url, 0, body, **{"Content-Encoding": "gzip"})
    assert resp.status == 415
    assert "Content-Encoding" in (await resp.json())["error"]
    head = await client.head(url, headers=TUS)
    assert head.headers["Upload-Offset"] == "0"


async def test_a_tus_patch_of_no_stated_length_keeps_the_free_space_floor(client, client_as, config):
    """Chunked, so no Content-Length to check up front: the floor is kept while it is written,
    and none of the chunk that crossed it is kept."""
    size = 128 * 1024**2
    url = await create(client, size)  # where the disk had room for all of it
    free = shutil.disk_usage(config.import_dir).free
    floor = free - 2 * 1024**2  # now 2 MiB may still be written; the body brings 128 MiB
    client = await client_as("admin", app=create_app(dataclasses.replace(config, upload_min_free_bytes=floor)))

    async def chunks():
        piece = b"y" * (256 * 1024)
        for _ in range(size // len(piece)):
            yield piece

    resp = await patch(client, url, 0, chunks())
    assert resp.status == 507, await resp.text()
    assert "UPLOAD_MIN_FREE_BYTES" in (await resp.json())["error"]
    head = await client.head(url, headers=TUS)
    assert head.headers["Upload-Offset"] == "0"
    assert files_of(config) == [f"{url.rsplit('/', 1)[1]}.tus"]
    assert (config.import_dir / "uploads" / files_of(config)[0]).stat().st_size == 0
