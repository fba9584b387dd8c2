"""POST /import as a multipart upload: streamed to disk, capped, checked, never left half-written."""
import asyncio
import dataclasses
import hashlib
import os
import sys
import time

import aiohttp
import pytest

from server.app import create_app
from tests.importing import HEADER, TERMINAL, row, wait_for_status, write_csv
from tests.processes import RssGrowth, ServerProcess, admin_headers, server_env
from tests.waiting import eventually

CSV = ("\n".join([HEADER] + [row(i, f"U{i}", f"Up{i}") for i in range(1, 2001)]) + "\n").encode()


def form(data: bytes, filename: str = "customers.csv") -> aiohttp.FormData:
    body = aiohttp.FormData()
    body.add_field("note", "ignored")
    body.add_field("file", data, filename=filename, content_type="text/csv")
    return body


def stored(config) -> list:
    folder = config.import_dir / "uploads"
    return sorted(folder.iterdir()) if folder.exists() else []


async def test_an_upload_is_stored_under_a_name_the_server_makes_and_imported(client, config, db):
    resp = await client.post("/import", data=form(CSV, filename="../../etc/customers.csv"))
    assert resp.status == 202, await resp.text()
    job = await resp.json()
    assert job["filename"] == "customers.csv"
    assert job["upload"] == {"sha256": hashlib.sha256(CSV).hexdigest(), "bytes": len(CSV)}
    [path] = stored(config)
    assert path.name != "customers.csv" and len(path.stem) == 32  # a uuid
    assert path.read_bytes() == CSV
    done = await wait_for_status(client.app, job["id"], TERMINAL)
    assert (done["status"], done["inserted"]) == ("completed", 2000)
    assert await db.value("SELECT first_name FROM customers WHERE customer_id = 'U2000'") == "Up2000"


@pytest.mark.parametrize(("data", "status", "named"), [
    (b"\x00\x00\x00\x01PK binary stuff\n" + b"\x00" * 5000, 415, "NUL"),
    (b"Index,Name,Email\n1,Ann,a@b.c\n", 422, "Customer Id"),
    (b"", 422, "empty"),
])
async def test_content_that_is_not_a_customer_csv_is_refused(client, config, db, data, status, named):
    resp = await client.post("/import", data=form(data))
    assert resp.status == status
    assert named in (await resp.json())["error"]
    assert stored(config) == []
    assert await db.value("SELECT count(*) FROM import_jobs") == 0


async def test_a_body_without_the_file_field_is_400(client):
    body = aiohttp.FormData()
    body.add_field("other", b"x", filename="x.csv")
    resp = await client.post("/import", data=body)
    assert resp.status == 400
    assert "'file'" in (await resp.json())["error"]


async def test_over_the_cap_is_413_and_leaves_no_file(client_as, config, db):
    small = dataclasses.replace(config, upload_max_bytes=100_000)
    client = await client_as("admin", app=create_app(small))
    resp = await client.post("/import", data=form(CSV))
    assert len(CSV) > 100_000 and resp.status == 413
    assert "100000 bytes" in (await resp.json())["error"]
    assert stored(config) == []
    assert await db.value("SELECT count(*) FROM import_jobs") == 0


async def test_a_client_that_goes_away_mid_upload_leaves_no_file_and_no_job(client, config, db):
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    boundary = "b0undary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n"
            "Content-Type: text/csv\r\n\r\n").encode()
    writer.write(("POST /import HTTP/1.1\r\nHost: localhost\r\n"
                  f"Authorization: Bearer {client.token}\r\n"
                  f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                  f"Content-Length: {len(head) + 50 * len(CSV)}\r\n\r\n").encode() + head + CSV)
    await writer.drain()
    await eventually(lambda: stored(config))  # the server has started writing the file...
    writer.close()  # ...and the client is gone
    await eventually(lambda: not stored(config))
    assert await db.value("SELECT count(*) FROM import_jobs") == 0


async def test_an_upload_while_a_job_is_active_is_409_and_stores_nothing(client, config):
    job_id = None
    write_csv(config.import_dir / "first.csv", [HEADER] + [row(i, f"F{i}") for i in range(20000)])
    job_id = (await (await client.post("/import", json={"path": "first.csv"})).json())["id"]
    assert (await client.post(f"/import/jobs/{job_id}/pause")).status == 200
    resp = await client.post("/import", data=form(CSV))
    assert resp.status == 409
    assert (await resp.json())["job"]["id"] == job_id
    assert stored(config) == []


async def _body(total: int):
    chunk = (HEADER + "\n").encode()
    line = row(1, "BIG1", about="x" * 900).encode() + b"\n"
    block = line * (1024 * 1024 // len(line))
    sent = 0
    yield chunk
    while sent < total:
        yield block
        sent += len(block)


@pytest.mark.slow
async def test_a_200_mb_upload_grows_the_server_rss_by_less_than_50_mb(db_url, tmp_path):
    env = server_env(DATABASE_URL=db_url, IMPORT_DIR=str(tmp_path), IMPORT_BATCH_BYTES=str(64 * 1024))
    async with ServerProcess(env, tmp_path / "server.log") as server, \
            aiohttp.ClientSession(headers=await admin_headers(db_url)) as session:
        # Warm up: the first upload imports what an upload needs, like any later one.
        async with session.post(server.url + "/import", data=form(CSV)) as resp:
            warm = await resp.json()
        async with session.post(server.url + f"/import/jobs/{warm['id']}/cancel"):
            pass
        body = aiohttp.MultipartWriter("form-data")
        part = body.append(aiohttp.payload.AsyncIterablePayload(_body(200 * 1024 * 1024)))
        part.set_content_disposition("form-data", name="file", filename="big.csv")
        async with RssGrowth(server.pid) as rss:
            started = time.monotonic()
            async with session.post(server.url + "/import", data=body) as resp:
                assert resp.status == 202, await resp.text()
                job = await resp.json()
            seconds = time.monotonic() - started
        async with session.post(server.url + f"/import/jobs/{job['id']}/cancel"):
            pass
    baseline, peak, growth_mb = rss.baseline, rss.peak, rss.growth_mb
    print(f"\n200 MB upload in {seconds:.1f}s: server RSS {baseline / 1024**2:.0f} MB -> "
          f"peak {peak / 1024**2:.0f} MB (+{growth_mb:.1f} MB)", file=sys.stderr)
    assert job["upload"]["bytes"] >= 200 * 1024 * 1024
    assert growth_mb < 50


def multipart(boundary: str, parts: list[tuple[str, bytes]], *, close: bool = True) -> bytes:
    """A multipart/form-data body by hand: [(headers, content)]."""
    body = b"".join(f"--{boundary}\r\n{headers}\r\n\r\n".encode() + content + b"\r\n"
                    for headers, content in parts)
    return body + (f"--{boundary}--\r\n".encode() if close else b"")


FILE_HEADERS = 'Content-Disposition: form-data; name="file"; filename="a.csv"\r\nContent-Type: text/csv'


@pytest.mark.parametrize(("content_type", "body", "named"), [
    ("multipart/form-data", multipart("xyz", [(FILE_HEADERS, CSV)]), "boundary"),
    ("multipart/form-data; boundary=", multipart("", [(FILE_HEADERS, CSV)]), "boundary"),
    ("multipart/form-data; boundary=xyz", CSV, "boundary"),
    ("multipart/form-data; boundary=xyz", multipart("xyz", [(FILE_HEADERS, CSV)], close=False), "boundary"),
    ("multipart/form-data; boundary=xyz",
     multipart("xyz", [('Content-Disposition: form-data; name="file"; filename="a\x00.csv"', CSV)]), "header"),
    ("multipart/form-data; boundary=xyz",
     multipart("xyz", [('Content-Disposition: form-data; name="file"\x00; filename="a.csv"', CSV)]), "header"),
    ("multipart/form-data; boundary=" + "b" * 80, multipart("b" * 80, [(FILE_HEADERS, CSV)]), "boundary"),
])
async def test_a_malformed_multipart_body_is_400_and_leaves_nothing(client, config, db, content_type, body, named):
    resp = await client.post("/import", data=body, headers={"Content-Type": content_type})
    assert resp.status == 400, await resp.text()
    assert named in (await resp.json())["error"]
    assert stored(config) == []
    assert await db.value("SELECT count(*) FROM import_jobs") == 0


async def test_a_compressed_request_body_is_415_and_stores_nothing(client, config, db):
    import gzip
    body = aiohttp.MultipartWriter("form-data", boundary="gz")
    part = body.append(b"x" * 10_000_000 + CSV)
    part.set_content_disposition("form-data", name="file", filename="a.csv")
    packed = gzip.compress(await body.as_bytes())
    resp = await client.post("/import", data=packed, headers={
        "Content-Type": "multipart/form-data; boundary=gz", "Content-Encoding": "gzip"})
    assert resp.status == 415
    assert "Content-Encoding" in (await resp.json())["error"]
    assert stored(config) == []
    assert await db.value("SELECT count(*) FROM import_jobs") == 0


async def test_bidi_and_invisible_characters_leave_the_stored_name(client):
    resp = await client.post("/import", data=form(CSV, filename="invoice\u202egpj.csv\u200b\u2066\u0085"))
    assert resp.status == 202, await resp.text()
    assert (await resp.json())["filename"] == "invoicegpj.csv"


async def test_many_parts_before_the_file_are_refused_without_reading_them(client, config, db):
    empty = ('Content-Disposition: form-data; name="x"', b"")
    body = multipart("many", [empty] * 40_000 + [(FILE_HEADERS, CSV)])
    resp = await client.post("/import", data=body, headers={"Content-Type": "multipart/form-data; boundary=many"})
    assert resp.status == 413
    assert f"{config.multipart_max_parts} parts" in (await resp.json())["error"]
    assert stored(config) == []
    assert await db.value("SELECT count(*) FROM import_jobs") == 0
    # A few fields beside the file are fine.
    body = multipart("few", [empty] * (config.multipart_max_parts - 1) + [(FILE_HEADERS, CSV)])
    resp = await client.post("/import", data=body, headers={"Content-Type": "multipart/form-data; boundary=few"})
    assert resp.status == 202, await resp.text()


async def _start_raw_upload(host: str, port: int, first: bytes, total: int | None, token: str):
    """An upload by hand that sends `first` and then waits: the test decides what comes next."""
    reader, writer = await asyncio.open_connection(host, port)
    length = f"Content-Length: {total}\r\n" if total is not None else ""
    writer.write(("POST /import HTTP/1.1\r\nHost: localhost\r\n"
                  f"Authorization: Bearer {token}\r\n"
                  "Content-Type: multipart/form-data; boundary=raw\r\n"
                  f"{length}\r\n").encode()
                 + f"--raw\r\n{FILE_HEADERS}\r\n\r\n".encode() + first)
    await writer.drain()
    return reader, writer


def partials(config) -> list:
    folder = config.import_dir / "uploads"
    return sorted(folder.glob("*.part")) if folder.exists() else []


async def test_one_upload_too_many_is_429_with_retry_after(client_as, config, db):
    client = await client_as("admin", app=create_app(dataclasses.replace(config, uploads_max_concurrent=1)))
    tail = b"\r\n--raw--\r\n"
    total = len(f"--raw\r\n{FILE_HEADERS}\r\n\r\n") + len(CSV) + len(tail)
    reader, writer = await _start_raw_upload(client.server.host, client.server.port, CSV[:1000], total, client.token)
    await eventually(lambda: partials(config))
    resp = await client.post("/import", data=form(CSV))
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) > 0
    assert "UPLOADS_MAX_CONCURRENT" in (await resp.json())["error"]
    writer.write(CSV[1000:] + tail)  # the first one goes on to the end
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert b" 202 " in status_line
    [path] = stored(config)
    assert path.suffix == ".csv" and path.read_bytes() == CSV


async def test_an_upload_that_would_leave_too_little_free_space_is_507(client_as, config, db):
    import shutil
    free = shutil.disk_usage(config.import_dir).free
    client = await client_as("admin", app=create_app(dataclasses.replace(config, upload_min_free_bytes=free + 10**12)))
    resp = await client.post("/import", data=form(CSV))  # with a Content-Length: refused before the body
    assert resp.status == 507
    assert "UPLOAD_MIN_FREE_BYTES" in (await resp.json())["error"]
    # Without a Content-Length the floor is met while writing: 30 MB cross it. The body
    # offers 1 GB (made as it is read), so that a disk other processes free meanwhile
    # (PostgreSQL recycling WAL) cannot let it through.
    client = await client_as("admin", app=create_app(dataclasses.replace(
        config, upload_min_free_bytes=free - 30 * 1024**2)))
    body = aiohttp.MultipartWriter("form-data")
    part = body.append(aiohttp.payload.AsyncIterablePayload(_body(1024 * 1024 * 1024)))
    part.set_content_disposition("form-data", name="file", filename="big.csv")
    resp = await client.post("/import", data=body)
    assert resp.status == 507
    assert stored(config) == [] and partials(config) == []
    assert await db.value("SELECT count(*) FROM import_jobs") == 0


async def test_a_body_that_stalls_is_dropped_and_its_file_removed(client_as, config, db):
    client = await client_as("admin", app=create_app(dataclasses.replace(config, upload_stall_seconds=1)))
    reader, writer = await _start_raw_upload(client.server.host, client.server.port, CSV[:5000], 10**7, client.token)
    await eventually(lambda: partials(config))
    answer = await asyncio.wait_for(reader.read(3000), 10)  # nothing more is sent
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ") and b"Connection: close" in answer
    assert b"UPLOAD_STALL_SECONDS" in answer
    assert stored(config) == [] and partials(config) == []
    assert await db.value("SELECT count(*) FROM import_jobs") == 0


@pytest.mark.slow
async def test_a_server_killed_mid_upload_leaves_no_file_that_looks_complete(db_url, tmp_path):
    uploads = tmp_path / "uploads"
    env = server_env(DATABASE_URL=db_url, IMPORT_DIR=str(tmp_path), UPLOAD_STALL_SECONDS="0.5")
    server = ServerProcess(env, tmp_path / "server.log")
    try:
        await server.start()
        token = (await admin_headers(db_url))["Authorization"].removeprefix("Bearer ")
        reader, writer = await _start_raw_upload("127.0.0.1", server.port, CSV[:100_000], 10**7, token)
        await eventually(lambda: any(uploads.iterdir()) if uploads.exists() else False)
        server.kill()
        writer.close()
    finally:
        server.kill()
    left = sorted(uploads.iterdir())
    assert left and all(p.name.endswith(".csv.part") for p in left), left
    # The next start clears what nobody has written for twice UPLOAD_STALL_SECONDS (1 s here).
    for path in left:
        os.utime(path, (time.time() - 2, time.time() - 2))
    async with ServerProcess(env, tmp_path / "server.log", port=server.port):
        assert sorted(uploads.iterdir()) == []
