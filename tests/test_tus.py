"""/uploads speaks tus 1.0.0: creation, offsets, checksums, locks, termination, expiration, import."""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import os
import shutil
import time
import uuid

import pytest

from server.app import create_app
from server.keys import tus_key, uploads_key
from tests.importing import HEADER, TERMINAL, row, wait_for_status
from tests.test_uploads import eventually

TUS = {"Tus-Resumable": "1.0.0"}
CSV = ("\n".join([HEADER] + [row(i, f"T{i}", f"Tus{i}") for i in range(1, 1001)]) + "\n").encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def create(client, size: int, filename: str = "customers.csv") -> str:
    resp = await client.post("/uploads", headers={**TUS, "Upload-Length": str(size),
                                                  "Upload-Metadata": f"filename {b64(filename.encode())}"})
    assert resp.status == 201, await resp.text()
    return resp.headers["Location"]


async def patch(client, url: str, offset: int, data, checksum: str | None = None, **headers):
    headers = {**TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream",
               **headers}
    if checksum is not None:
        headers["Upload-Checksum"] = checksum
    return await client.patch(url, data=data, headers=headers)


def sha1_header(data: bytes) -> str:
    return f"sha1 {b64(hashlib.sha1(data).digest())}"


def files_of(config) -> list[str]:
    folder = config.import_dir / "uploads"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def bytes_of(config, url: str) -> int:
    """The size of the upload's file on disk, whatever its name (part or final)."""
    upload_id = url.rsplit("/", 1)[1]
    return sum((config.import_dir / "uploads" / name).stat().st_size
               for name in files_of(config) if name.startswith(upload_id))


async def locks_held(db) -> int:
    """Upload locks held in the test's database: a request is writing, deleting or importing one."""
    return await db.value("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 7343 "
                          "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")


async def test_options_tells_what_the_server_speaks(client, config):
    resp = await client.options("/uploads")
    assert resp.status == 204
    assert resp.headers["Tus-Version"] == "1.0.0"
    assert set(resp.headers["Tus-Extension"].split(",")) >= {"creation", "termination", "checksum", "expiration"}
    assert "sha1" in resp.headers["Tus-Checksum-Algorithm"].split(",")
    assert int(resp.headers["Tus-Max-Size"]) == config.upload_max_bytes


async def test_an_upload_in_chunks_is_stored_whole_and_head_reports_the_offset(client, config, db):
    url = await create(client, len(CSV), "my file.csv")
    assert url.startswith("/uploads/")
    upload_id = url.rsplit("/", 1)[1]
    assert await db.one('SELECT filename, size, "offset", sha256 FROM uploads WHERE id = %s', (upload_id,)) == \
        ("my file.csv", len(CSV), 0, None)

    half = len(CSV) // 2
    resp = await patch(client, url, 0, CSV[:half], sha1_header(CSV[:half]))
    assert resp.status == 204, await resp.text()
    assert resp.headers["Upload-Offset"] == str(half)
    assert resp.headers["Tus-Resumable"] == "1.0.0"
    assert "Upload-Expires" in resp.headers

    head = await client.head(url, headers=TUS)
    assert head.status == 200
    assert (head.headers["Upload-Offset"], head.headers["Upload-Length"]) == (str(half), str(len(CSV)))
    assert head.headers["Cache-Control"] == "no-store"
    assert "Upload-Offset" in head.headers["Access-Control-Expose-Headers"]
    assert head.headers["Upload-Metadata"] == f"filename {b64(b'my file.csv')}"

    resp = await patch(client, url, half, CSV[half:])
    assert resp.status == 204
    assert resp.headers["Upload-Offset"] == str(len(CSV))
    assert files_of(config) == [f"{upload_id}.csv"]
    assert (config.import_dir / "uploads" / f"{upload_id}.csv").read_bytes() == CSV
    assert await db.value("SELECT sha256 FROM uploads WHERE id = %s", (upload_id,)) == \
        hashlib.sha256(CSV).hexdigest()


async def test_a_wrong_checksum_is_460_and_nothing_of_the_chunk_is_kept(client, config, db):
    url = await create(client, len(CSV))
    assert (await patch(client, url, 0, CSV[:1000], sha1_header(CSV[:1000]))).status == 204
    resp = await patch(client, url, 1000, CSV[1000:2000], sha1_header(b"something else"))
    assert resp.status == 460
    assert "sha1" in (await resp.json())["error"]
    head = await client.head(url, headers=TUS)
    assert head.headers["Upload-Offset"] == "1000"
    [part] = files_of(config)
    assert (config.import_dir / "uploads" / part).stat().st_size == 1000
    # The same chunk with its right checksum goes on from there.
    assert (await patch(client, url, 1000, CSV[1000:2000], sha1_header(CSV[1000:2000]))).status == 204


@pytest.mark.parametrize(("checksum", "named"), [("crc32 AAAA", "crc32"), ("sha1 not-base64!", "base64"),
                                                 ("sha1 " + b64(b"short"), "20 bytes")])
async def test_a_checksum_the_server_cannot_check_is_400(client, checksum, named):
    url = await create(client, 100)
    resp = await patch(client, url, 0, b"x" * 10, checksum)
    assert resp.status == 400
    assert named in (await resp.json())["error"]


async def test_offsets_are_checked_and_the_protocol_enforced(client):
    url = await create(client, 100)
    assert (await patch(client, url, 5, b"abc")).status == 409
    assert (await patch(client, url, 0, b"x" * 101)).status == 413
    resp = await client.patch(url, data=b"abc", headers={"Upload-Offset": "0",
                                                         "Content-Type": "application/offset+octet-stream"})
    assert resp.status == 412 and resp.headers["Tus-Version"] == "1.0.0"
    resp = await client.patch(url, data=b"abc", headers={**TUS, "Upload-Offset": "0",
                                                         "Content-Type": "text/plain"})
    assert resp.status == 415
    assert (await patch(client, "/uploads/" + "0" * 32, 0, b"abc")).status == 404
    resp = await client.post("/uploads", headers=TUS)
    assert resp.status == 400 and "Upload-Length" in (await resp.json())["error"]


async def test_over_the_size_cap_is_413_at_creation(client_as, config):
    client = await client_as("admin", app=create_app(dataclasses.replace(config, upload_max_bytes=1000)))
    resp = await client.post("/uploads", headers={**TUS, "Upload-Length": "1001"})
    assert resp.status == 413


async def test_a_second_patch_while_one_is_writing_is_423(client, db):
    url = await create(client, 10 * 1024**2)
    release = asyncio.Event()
    sent = asyncio.Event()

    async def slow_body():
        yield b"a" * 65536
        sent.set()
        await release.wait()
        yield b"b" * 65536

    first = asyncio.create_task(patch(client, url, 0, slow_body()))
    await sent.wait()

    async def the_server_holds_it() -> bool:
        return await locks_held(db) == 1
    await eventually(the_server_holds_it)
    second = await patch(client, url, 0, b"c" * 100)
    assert second.status == 423
    release.set()
    resp = await first
    assert resp.status == 204 and resp.headers["Upload-Offset"] == str(2 * 65536)


async def test_delete_removes_the_file_and_the_row(client, config, db):
    url = await create(client, len(CSV))
    assert (await patch(client, url, 0, CSV[:500])).status == 204
    assert files_of(config)
    resp = await client.delete(url, headers=TUS)
    assert resp.status == 204
    assert files_of(config) == []
    assert await db.value("SELECT count(*) FROM uploads") == 0
    assert (await client.head(url, headers=TUS)).status == 404


async def test_an_expired_upload_is_swept(client_as, config, db):
    short = dataclasses.replace(config, tus_expire_seconds=0.5, tus_sweep_seconds=0.2)
    client = await client_as("admin", app=create_app(short))
    url = await create(client, len(CSV))
    assert (await patch(client, url, 0, CSV[:500])).status == 204
    assert files_of(config)

    async def swept() -> bool:
        return not files_of(config) and not await db.value("SELECT count(*) FROM uploads")
    await eventually(swept)
    assert files_of(config) == []
    assert await db.value("SELECT count(*) FROM uploads") == 0
    assert (await client.head(url, headers=TUS)).status == 404


async def test_a_finished_upload_is_imported_and_an_unfinished_or_unknown_one_refused(client, config, db):
    url = await create(client, len(CSV), "tus customers.csv")
    upload_id = url.rsplit("/", 1)[1]
    assert (await patch(client, url, 0, CSV[:100])).status == 204
    resp = await client.post("/import", json={"upload": upload_id})
    assert resp.status == 409
    assert "100 of its" in (await resp.json())["error"]
    resp = await client.post("/import", json={"upload": "f" * 32})
    assert resp.status == 404
    resp = await client.post("/import", json={"upload": "../etc"})
    assert resp.status == 422
    resp = await client.post("/import", json={"upload": upload_id, "path": "x.csv"})
    assert resp.status == 422

    assert (await patch(client, url, 100, CSV[100:])).status == 204
    resp = await client.post("/import", json={"upload": upload_id})
    assert resp.status == 202, await resp.text()
    job = await resp.json()
    assert job["filename"] == "tus customers.csv"
    assert job["upload"] == {"sha256": hashlib.sha256(CSV).hexdigest(), "bytes": len(CSV)}
    done = await wait_for_status(client.app, job["id"], TERMINAL)
    assert (done["status"], done["inserted"]) == ("completed", 1000)
    assert await db.value("SELECT count(*) FROM uploads") == 0  # it is the job's file now
    assert files_of(config) == [f"{upload_id}.csv"]
    # Imported once: the upload is no more.
    assert (await client.post("/import", json={"upload": upload_id})).status == 404


async def test_a_sweep_leaves_uploads_in_use_and_imported_files_alone(client, config, db):
    url = await create(client, len(CSV))
    upload_id = url.rsplit("/", 1)[1]
    assert (await patch(client, url, 0, CSV)).status == 204
    assert (await client.post("/import", json={"upload": upload_id})).status == 202
    await db.all("UPDATE uploads SET expires = now() - interval '1 day'")
    assert await client.app[tus_key].sweep() == 0
    assert files_of(config) == [f"{upload_id}.csv"]


async def cut_short_patch(client, config, db, url: str, data: bytes, announced: int, **headers) -> int:
    """A PATCH whose client goes away after `data` of the `announced` bytes, once the server
    is writing them; returns, with how many were on disk at the cut, when the server has let
    go of the upload (has answered it)."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    lines = [f"PATCH {url} HTTP/1.1", "Host: localhost", "Tus-Resumable: 1.0.0", "Upload-Offset: 0",
             "Content-Type: application/offset+octet-stream", f"Content-Length: {announced}",
             *(f"{k}: {v}" for k, v in {**headers, **client_headers(client)}.items())]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
    await writer.drain()
    await eventually(lambda: bytes_of(config, url) > 0)  # mid-body: part of it is on disk
    on_disk = bytes_of(config, url)
    writer.close()

    async def let_go() -> bool:
        return await locks_held(db) == 0
    await eventually(let_go)
    return on_disk


def client_headers(client) -> dict[str, str]:
    """What the test client sends on every request (its credentials, once sign-in exists)."""
    return dict(client.session.headers)


async def offset_of(client, url: str) -> int:
    return int((await client.head(url, headers=TUS)).headers["Upload-Offset"])


async def test_a_chunk_cut_short_keeps_what_arrived_unless_it_had_a_checksum(client, config, db):
    url = await create(client, 10**6)
    on_disk = await cut_short_patch(client, config, db, url, b"a" * 300_000, announced=10**6)
    # Kept: what was on disk at the cut, and what the server had read but not written yet.
    kept = await offset_of(client, url)
    assert on_disk <= kept <= 300_000 and bytes_of(config, url) == kept
    assert (await patch(client, url, kept, b"b" * (10**6 - kept))).status == 204
    assert (config.import_dir / "uploads" / f"{url.rsplit('/', 1)[1]}.csv").read_bytes() == \
        b"a" * kept + b"b" * (10**6 - kept)

    # Part of this chunk was on disk when its client went away (cut_short_patch waits for
    # that), and the server has answered since: none of it stays, as it cannot be verified.
    url = await create(client, 10**6)
    await cut_short_patch(client, config, db, url, b"a" * 300_000, announced=10**6,
                          **{"Upload-Checksum": sha1_header(b"a" * 10**6)})
    assert await offset_of(client, url) == 0
    assert bytes_of(config, url) == 0


async def test_a_patch_to_a_finished_upload_changes_nothing(client, config):
    url = await create(client, 10)
    assert (await patch(client, url, 0, b"0123456789")).status == 204
    resp = await patch(client, url, 10, b"")
    assert (resp.status, resp.headers["Upload-Offset"]) == (204, "10")
    assert (config.import_dir / "uploads" / (url.rsplit("/", 1)[1] + ".csv")).read_bytes() == b"0123456789"


async def test_an_upload_whose_file_was_lost_is_gone(client, config, db):
    url = await create(client, 100)
    assert (await patch(client, url, 0, b"x" * 50)).status == 204
    (config.import_dir / "uploads" / (url.rsplit("/", 1)[1] + ".tus")).unlink()
    resp = await patch(client, url, 50, b"y" * 50)
    assert resp.status == 410
    assert await db.value("SELECT count(*) FROM uploads") == 0


@pytest.mark.parametrize(("env", "named"), [
    ({"TUS_EXPIRE_SECONDS": "0"}, "TUS_EXPIRE_SECONDS"),
    ({"TUS_SWEEP_SECONDS": "soon"}, "TUS_SWEEP_SECONDS"),
    ({"TUS_PAGE_CHUNK_BYTES": "1000"}, "TUS_PAGE_CHUNK_BYTES must be from 65536"),
])
def test_a_bad_tus_setting_names_the_variable(env, named):
    from server.config import Config, ConfigError

    with pytest.raises(ConfigError, match=named):
        Config.from_env(env)


async def test_past_the_concurrency_cap_a_patch_is_429_with_retry_after(client_as, config):
    client = await client_as("admin", app=create_app(dataclasses.replace(config, uploads_max_concurrent=1)))
    first_url, second_url = await create(client, 10**6), await create(client, 10**6)
    release, sent = asyncio.Event(), asyncio.Event()

    async def slow_body():
        yield b"a" * 1000
        sent.set()
        await release.wait()

    first = asyncio.create_task(patch(client, first_url, 0, slow_body()))
    await sent.wait()
    await eventually(lambda: client.app[uploads_key].in_use == 1)  # the first holds the only slot
    resp = await patch(client, second_url, 0, b"b" * 1000)
    assert resp.status == 429 and resp.headers["Retry-After"] == "30"
    assert "UPLOADS_MAX_CONCURRENT" in (await resp.json())["error"]
    release.set()
    assert (await first).status == 204


async def test_no_upload_that_would_leave_less_than_the_free_space_floor(client_as, config):
    client = await client_as("admin", app=create_app(dataclasses.replace(config, upload_min_free_bytes=2**62)))
    resp = await client.post("/uploads", headers={**TUS, "Upload-Length": "1000"})
    assert resp.status == 507
    assert "free" in (await resp.json())["error"]


async def test_an_import_refused_while_a_job_is_active_keeps_the_upload_for_later(client, config, db):
    from tests.importing import write_csv

    write_csv(config.import_dir / "first.csv", [HEADER] + [row(i, f"F{i}") for i in range(20000)])
    first = await (await client.post("/import", json={"path": "first.csv"})).json()
    assert (await client.post(f"/import/jobs/{first['id']}/pause")).status == 200
    url = await create(client, len(CSV))
    upload_id = url.rsplit("/", 1)[1]
    assert (await patch(client, url, 0, CSV)).status == 204

    resp = await client.post("/import", json={"upload": upload_id})
    assert resp.status == 409
    assert (await resp.json())["job"]["id"] == first["id"]
    head = await client.head(url, headers=TUS)
    assert (head.status, head.headers["Upload-Offset"]) == (200, str(len(CSV)))

    assert (await client.post(f"/import/jobs/{first['id']}/cancel")).status == 200
    resp = await client.post("/import", json={"upload": upload_id})
    assert resp.status == 202, await resp.text()
    done = await wait_for_status(client.app, (await resp.json())["id"], TERMINAL)
    assert (done["status"], done["inserted"]) == ("completed", 1000)


async def test_a_cors_origin_may_upload_and_read_the_tus_headers(client_as, config):
    dashboard = "https://dashboard.example"
    client = await client_as("admin", app=create_app(dataclasses.replace(config, cors_origins=(dashboard,))))
    preflight = await client.options("/uploads", headers={
        "Origin": dashboard, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, tus-resumable, upload-length, upload-metadata"})
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == dashboard
    assert preflight.headers["Access-Control-Allow-Credentials"] == "true"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "upload-length" in preflight.headers["Access-Control-Allow-Headers"]

    resp = await client.post("/uploads", headers={**TUS, "Origin": dashboard, "Upload-Length": str(len(CSV))})
    assert resp.status == 201
    assert resp.headers["Access-Control-Allow-Origin"] == dashboard
    assert "Location" in resp.headers["Access-Control-Expose-Headers"]
    url = resp.headers["Location"]
    preflight = await client.options(url, headers={"Origin": dashboard, "Access-Control-Request-Method": "PATCH",
                                                   "Access-Control-Request-Headers": "upload-offset"})
    assert "PATCH" in preflight.headers["Access-Control-Allow-Methods"]
    resp = await patch(client, url, 0, CSV, Origin=dashboard)
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == dashboard
    assert "Upload-Offset" in resp.headers["Access-Control-Expose-Headers"]

    other = await client.options("/uploads", headers={"Origin": "https://evil.example",
                                                      "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in other.headers
    resp = await client.head(url, headers={**TUS, "Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_an_expired_upload_is_410_until_the_sweep_and_404_after(client, config, db):
    url = await create(client, len(CSV))
    upload_id = url.rsplit("/", 1)[1]
    assert (await patch(client, url, 0, CSV)).status == 204
    await db.all("UPDATE uploads SET expires = now() - interval '1 second' WHERE id = %s", (upload_id,))
    # The sweep runs every TUS_SWEEP_SECONDS (300 here): until then the upload answers 410.
    head = await client.head(url, headers=TUS)
    assert head.status == 410 and head.headers["Tus-Resumable"] == "1.0.0"
    resp = await patch(client, url, len(CSV), b"x")
    assert resp.status == 410
    assert "expired" in (await resp.json())["error"]
    resp = await client.post("/import", json={"upload": upload_id})
    assert resp.status == 410
    assert "expired" in (await resp.json())["error"]
    assert await db.value("SELECT count(*) FROM import_jobs") == 0
    assert files_of(config) == [f"{upload_id}.csv"]  # refused, not removed: that is the sweep's work

    assert await client.app[tus_key].sweep() == 1
    assert (await client.head(url, headers=TUS)).status == 404
    assert files_of(config) == []


async def announce_patch(client, url: str, offset: int, announced: int, sent: bytes) -> int:
    """A PATCH announcing `announced` bytes that sends only `sent`; the status the server answers
    with before the rest (which never comes)."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    lines = [f"PATCH {url} HTTP/1.1", "Host: localhost", "Tus-Resumable: 1.0.0", f"Upload-Offset: {offset}",
             "Content-Type: application/offset+octet-stream", f"Content-Length: {announced}",
             *(f"{k}: {v}" for k, v in client_headers(client).items())]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + sent)
    await writer.drain()
    try:
        status_line = await asyncio.wait_for(reader.readline(), timeout=5)
    finally:
        writer.close()
    return int(status_line.split()[1])


async def test_a_patch_that_would_leave_less_than_the_free_space_floor_is_507(client_as, config):
    size = 512 * 1024**2
    roomy = await client_as("admin", app=create_app(dataclasses.replace(config, upload_min_free_bytes=0)))
    url = await create(roomy, size)
    # Since then the disk has filled up: 256 MiB more may still be stored, not the whole rest.
    free = shutil.disk_usage(config.import_dir).free
    full = await client_as("admin", app=create_app(dataclasses.replace(
        config, upload_min_free_bytes=free - 256 * 1024**2)))
    assert (await patch(full, url, 0, CSV[:1000])).status == 204
    assert await announce_patch(full, url, 1000, size - 1000, CSV[1000:]) == 507

    head = await full.head(url, headers=TUS)
    assert head.headers["Upload-Offset"] == "1000"
    [part] = files_of(config)
    assert (config.import_dir / "uploads" / part).stat().st_size == 1000


async def test_the_sweep_removes_old_part_files_no_upload_knows(client, config, db):
    url = await create(client, len(CSV))
    known = url.rsplit("/", 1)[1]
    assert (await patch(client, url, 0, CSV[:500])).status == 204
    folder = config.import_dir / "uploads"
    old_orphan, young_orphan = uuid.uuid4().hex, uuid.uuid4().hex
    (folder / f"{old_orphan}.tus").write_bytes(b"left by a crash between file and row")
    (folder / f"{young_orphan}.tus").write_bytes(b"its row may be on its way")
    long_ago = time.time() - config.tus_expire_seconds - 60
    for name in (f"{old_orphan}.tus", f"{known}.tus"):
        os.utime(folder / name, (long_ago, long_ago))

    assert await client.app[tus_key].sweep() == 1
    assert files_of(config) == sorted([f"{known}.tus", f"{young_orphan}.tus"])
    assert (await client.head(url, headers=TUS)).headers["Upload-Offset"] == "500"


async def test_importing_an_upload_that_is_not_csv_is_415_and_starts_nothing(client, config, db):
    # An Excel workbook (a zip) given a .csv name: binary from its first bytes.
    binary = b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00" + bytes(range(256)) * 64
    url = await create(client, len(binary), "customers.csv")
    upload_id = url.rsplit("/", 1)[1]
    assert (await patch(client, url, 0, binary)).status == 204

    resp = await client.post("/import", json={"upload": upload_id})
    assert resp.status == 415
    assert "not a CSV file" in (await resp.json())["error"]
    assert await db.value("SELECT count(*) FROM import_jobs") == 0
    assert await db.value("SELECT count(*) FROM customers") == 0
    # Still an upload, whole: it can be deleted (or left to expire); nothing of it was taken.
    head = await client.head(url, headers=TUS)
    assert (head.status, head.headers["Upload-Offset"]) == (200, str(len(binary)))
    assert (config.import_dir / "uploads" / f"{upload_id}.csv").read_bytes() == binary
    assert (await client.delete(url, headers=TUS)).status == 204
    assert files_of(config) == []
