"""What a probe of /uploads found (issue 22): odd header text, a client that goes away,
one user filling the disk or the table, a chunked creation, the HEAD route's description,
and which admin may act on whose upload."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil

import aiohttp
import pytest
from aiohttp import web

from server.app import create_app
from server.auth import store
from server.auth.roles import Role
from server.keys import pool_key

from .test_tus import CSV, TUS, create, files_of, patch
from .test_uploads import FILE_HEADERS, eventually, partials, stored


async def raw_request(client, head_lines: list[str], body: bytes = b"") -> tuple[int, bytes]:
    """A request written by hand (header bytes as given, UTF-8 included); its status and body."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    lines = [*head_lines, "Host: localhost", "Connection: close",
             *(f"{k}: {v}" for k, v in client.session.headers.items())]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    await writer.drain()
    try:
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    return int(answer.split()[1]), answer.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize(("header", "value"), [
    ("Upload-Metadata", "filename Y3N2\u00e9"),
    ("Upload-Metadata", "filename \u2603\u2603\u2603\u2603"),
])
async def test_non_ascii_upload_metadata_is_400_naming_the_header(client, db, header, value):
    status, body = await raw_request(client, ["POST /uploads HTTP/1.1", "Tus-Resumable: 1.0.0",
                                              "Upload-Length: 100", f"{header}: {value}"])
    assert status == 400, body
    assert header.encode() in body
    assert await db.value("SELECT count(*) FROM uploads") == 0


async def test_a_non_ascii_upload_checksum_is_400_naming_the_header(client):
    url = await create(client, 100)
    status, body = await raw_request(client, [
        f"PATCH {url} HTTP/1.1", "Tus-Resumable: 1.0.0", "Upload-Offset: 0",
        "Content-Type: application/offset+octet-stream", "Content-Length: 10",
        "Upload-Checksum: sha1 \u00e9\u00e9\u00e9\u00e9"], b"x" * 10)
    assert status == 400, body
    assert b"Upload-Checksum" in body
    assert (await client.head(url, headers=TUS)).headers["Upload-Offset"] == "0"


@dataclasses.dataclass
class Served:
    host: str
    port: int
    session: aiohttp.ClientSession  # signed in as an admin
    token: str


@pytest.fixture
async def served(app):
    """The test's app served as `python -m server serve` serves it. The test client's server
    cancels a handler whose client went away; web.run_app does not, so there the handler
    meets the broken connection itself, as it does in production."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    token = await store.create_token(app[pool_key], "served-admin", Role.admin)
    session = aiohttp.ClientSession(f"http://{host}:{port}", headers={"Authorization": f"Bearer {token}"})
    try:
        yield Served(host, port, session, token)
    finally:
        await session.close()
        await runner.cleanup()


async def _cut_short(served: Served, head_lines: list[str], body: bytes, written) -> None:
    """A request whose client goes away once `written()` says the server is writing its body."""
    reader, writer = await asyncio.open_connection(served.host, served.port)
    writer.write(("\r\n".join([*head_lines, "Host: localhost", f"Authorization: Bearer {served.token}"])
                  + "\r\n\r\n").encode() + body)
    await writer.drain()
    await eventually(written)
    writer.close()


def _answered(caplog, request_line: str):
    def answered() -> bool:
        return any(r.name == "aiohttp.access" and request_line in r.getMessage() for r in caplog.records)
    return answered


def _errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_a_multipart_client_that_goes_away_mid_body_is_no_server_error(served, config, db, caplog):
    caplog.set_level(logging.INFO)

    def writing() -> bool:
        return bool(partials(config))
    await _cut_short(served, ["POST /import HTTP/1.1", "Content-Type: multipart/form-data; boundary=raw",
                                      f"Content-Length: {10 * len(CSV)}"],
                     f"--raw\r\n{FILE_HEADERS}\r\n\r\n".encode() + CSV, writing)
    await eventually(_answered(caplog, "POST /import"))
    [access] = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert '" 500 ' not in access, access
    assert _errors(caplog) == []
    assert stored(config) == [] and partials(config) == []
    assert await db.value("SELECT count(*) FROM import_jobs") == 0


async def test_a_tus_client_that_goes_away_mid_body_is_no_server_error(served, config, caplog):
    caplog.set_level(logging.INFO)
    url = await create(served.session, len(CSV))

    def writing() -> bool:
        return any((config.import_dir / "uploads" / name).stat().st_size for name in files_of(config))
    await _cut_short(served, [f"PATCH {url} HTTP/1.1", "Tus-Resumable: 1.0.0", "Upload-Offset: 0",
                                      "Content-Type: application/offset+octet-stream",
                                      f"Content-Length: {len(CSV)}"], CSV[:300_000], writing)
    await eventually(_answered(caplog, f"PATCH {url}"))
    assert _errors(caplog) == []
    # What the server had taken in is kept (tus core), and counted.
    offset = int((await served.session.head(url, headers=TUS)).headers["Upload-Offset"])
    [part] = files_of(config)
    assert 0 < offset <= 300_000 and (config.import_dir / "uploads" / part).stat().st_size == offset


async def test_a_chunked_body_on_post_uploads_is_refused_and_creates_nothing(client, db, config):
    async def body():
        yield b"Index,Customer Id\n"
        yield b"1,A\n"

    resp = await client.post("/uploads", data=body(), headers={**TUS, "Upload-Length": "100"})
    assert resp.request_info.headers.get("Transfer-Encoding") == "chunked"
    assert resp.status == 400
    assert "PATCH" in (await resp.json())["error"]
    assert await db.value("SELECT count(*) FROM uploads") == 0
    assert files_of(config) == []
    # An empty body, as a browser's XMLHttpRequest announces it, is no body.
    status, body = await raw_request(client, ["POST /uploads HTTP/1.1", "Tus-Resumable: 1.0.0",
                                              "Upload-Length: 100", "Content-Length: 0"])
    assert status == 201, body


async def test_head_of_an_upload_is_in_the_openapi_document(client):
    spec = await (await client.get("/openapi.json")).json()
    head = spec["paths"]["/uploads/{id}"]["head"]
    assert "Upload-Offset" in head["summary"]
    assert head["x-required-role"] == "admin"
    assert set(head["responses"]) >= {"200", "404", "410", "401", "403"}


async def test_one_user_may_hold_only_so_many_uploads(client_as, aiohttp_client, config, db):
    app = create_app(dataclasses.replace(config, uploads_max_per_user=3))
    first = await client_as(Role.admin, app=app, name="first")
    answers = await asyncio.gather(*(first.post("/uploads", headers={**TUS, "Upload-Length": "1000"})
                                     for _ in range(10)))
    statuses = sorted(resp.status for resp in answers)
    assert statuses == [201] * 3 + [429] * 7  # checked and counted atomically, even all at once
    refused = next(resp for resp in answers if resp.status == 429)
    message = (await refused.json())["error"]
    assert "UPLOADS_MAX_PER_USER" in message and "3" in message
    assert await db.value("SELECT count(*) FROM uploads") == 3

    # Another user is not held back by the first; the first may go on once one of theirs is gone.
    token = await store.create_token(app[pool_key], "second", Role.admin)
    second = await aiohttp_client(first.server, headers={"Authorization": f"Bearer {token}"})
    assert (await second.post("/uploads", headers={**TUS, "Upload-Length": "1000"})).status == 201
    mine = next(resp.headers["Location"] for resp in answers if resp.status == 201)
    assert (await first.delete(mine, headers=TUS)).status == 204
    assert (await first.post("/uploads", headers={**TUS, "Upload-Length": "1000"})).status == 201


async def test_a_preview_kept_as_an_upload_counts_against_the_cap_and_is_refused_at_it(client_as, config, db):
    """docs/uploads.md: UPLOADS_MAX_PER_USER holds tus uploads and kept previews alike; a
    multipart preview kept one more copy for 24 h however many the user held already."""
    app = create_app(dataclasses.replace(config, uploads_max_per_user=2))
    client = await client_as(Role.admin, app=app, name="previewer")

    def form() -> aiohttp.FormData:
        body = aiohttp.FormData()
        body.add_field("file", CSV, filename="a.csv", content_type="text/csv")
        return body

    assert (await client.post("/uploads", headers={**TUS, "Upload-Length": "1000"})).status == 201
    resp = await client.post("/import/preview", data=form())
    assert resp.status == 200, await resp.text()
    resp = await client.post("/import/preview", data=form())
    assert resp.status == 429, await resp.text()
    assert "UPLOADS_MAX_PER_USER" in (await resp.json())["error"]
    assert await db.value("SELECT count(*) FROM uploads") == 2
    await eventually(lambda: len(stored(config)) == 2)


async def test_announced_bytes_of_unfinished_uploads_count_against_the_free_space(client_as, config, db):
    """300 creations of 30 GiB each on a 40 GB disk were all accepted: each fitted alone.
    Here the disk has about 100 MiB to give; ten uploads of 40 MiB are announced at once."""
    free = shutil.disk_usage(config.import_dir).free
    floor = free - 100 * 1024**2
    app = create_app(dataclasses.replace(config, upload_min_free_bytes=floor, uploads_max_per_user=100))
    client = await client_as(Role.admin, app=app)
    size = 40 * 1024**2
    answers = await asyncio.gather(*(client.post("/uploads", headers={**TUS, "Upload-Length": str(size)})
                                     for _ in range(10)))
    accepted = [resp for resp in answers if resp.status == 201]
    refused = [resp for resp in answers if resp.status != 201]
    # The disk's free space moves a little under other processes: two, give or take one.
    assert 1 <= len(accepted) <= 3, [resp.status for resp in answers]
    assert {resp.status for resp in refused} == {507}
    message = (await refused[0].json())["error"]
    assert "announced" in message and "UPLOAD_MIN_FREE_BYTES" in message
    assert await db.value("SELECT count(*) FROM uploads") == len(accepted)

    # A finished upload has announced nothing more: its bytes are on the disk now.
    small = await create(client, len(CSV))
    assert (await patch(client, small, 0, CSV)).status == 204


async def test_any_admin_may_act_on_another_admins_upload_and_no_one_below(client_as, config, db):
    """The rule of docs/uploads.md: uploads belong to the admins together, as jobs do."""
    owner = await client_as(Role.admin, name="owner")
    other = await client_as(Role.admin, name="other")
    url = await create(owner, len(CSV))
    upload_id = url.rsplit("/", 1)[1]
    assert await db.value("SELECT owner FROM uploads") == "token:owner"
    for role in (Role.viewer, Role.editor):
        below = await client_as(role)
        assert (await below.head(url, headers=TUS)).status == 403
        assert (await patch(below, url, 0, CSV[:100])).status == 403
        assert (await below.delete(url, headers=TUS)).status == 403
    assert (await other.head(url, headers=TUS)).status == 200
    assert (await patch(other, url, 0, CSV)).status == 204
    resp = await other.post("/import", json={"upload": upload_id})
    assert resp.status == 202, await resp.text()

    url = await create(owner, 100)
    assert (await other.delete(url, headers=TUS)).status == 204
    assert await db.value("SELECT count(*) FROM uploads") == 0
