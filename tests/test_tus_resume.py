"""A real tus client (tuspy) uploads 200 MB in 5 MB chunks, is killed mid-way, and a new
client resumes from the URL the first one stored, ending with the very same bytes."""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from tusclient.client import TusClient
from tusclient.storage.filestorage import FileStorage

from tests.processes import RssGrowth, ServerProcess, admin_headers, server_env
from tests.test_tus import locks_held
from tests.waiting import eventually

pytestmark = pytest.mark.slow

SIZE = 200 * 1024**2
CHUNK = 5 * 1024**2

# The first client, in its own process so that it can be killed like a real one.
FIRST_CLIENT = """
import json, sys
from tusclient.client import TusClient
from tusclient.storage.filestorage import FileStorage
url, path, storage, headers = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
uploader = TusClient(url, headers=headers).uploader(
    path, chunk_size=%d, store_url=True, url_storage=FileStorage(storage), upload_checksum=True,
    metadata={"filename": "big.csv"})
uploader.upload()
""" % CHUNK


def client_headers(client) -> dict[str, str]:
    """What the test client sends on every request (its credentials, once sign-in exists)."""
    return dict(client.session.headers)


def write_random_file(path: Path, size: int) -> str:
    rng = random.Random(13)
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(size // (4 * 1024**2)):
            block = rng.randbytes(4 * 1024**2)
            digest.update(block)
            f.write(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def waiting_to_be_accepted(port: int) -> int:
    """Connections to the listening `port` that the kernel holds and the server has not
    taken up yet (Linux shows them as the rx_queue of the LISTEN socket)."""
    waiting = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                _, local, _, state, queues, *_ = line.split()
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    waiting += int(queues.split(":")[1], 16)
    return waiting


async def until_the_server_lets_go(client, db) -> None:
    """Until nothing of the killed client is left in the server: no connection of it waits
    to be accepted, none is open (aiohttp lists a connection until its handler has ended)
    and no upload's lock is held. A request the client had sent may be taken up after its
    kill, by a busy server: a chunk that had fully arrived is counted, one cut short is not."""
    connections = client.server.runner.server

    async def the_server_let_go() -> bool:
        return (not waiting_to_be_accepted(client.server.port) and not connections.connections
                and not await locks_held(db))
    await eventually(the_server_let_go, timeout=30)


async def stored_offset(db) -> int:
    return await db.value('SELECT coalesce(max("offset"), 0) FROM uploads')


async def test_a_killed_tus_client_resumes_from_the_stored_url_and_the_file_is_whole(client, config, db, tmp_path):
    source = tmp_path / "big.csv"
    expected = await asyncio.to_thread(write_random_file, source, SIZE)
    storage = tmp_path / "tus-urls.json"
    endpoint = str(client.make_url("/uploads"))

    first = subprocess.Popen([sys.executable, "-c", FIRST_CLIENT, endpoint, str(source), str(storage),
                              json.dumps(client_headers(client))],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        async def a_good_part_is_stored() -> bool:  # not all of it
            return first.poll() is not None or await stored_offset(db) >= 12 * CHUNK
        await eventually(a_good_part_is_stored, timeout=60)
        assert first.poll() is None, first.communicate()
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.wait(10)
    await until_the_server_lets_go(client, db)
    killed_at = await stored_offset(db)
    assert 0 < killed_at < SIZE
    assert killed_at % CHUNK == 0  # a chunk cut short by the kill left nothing (it had a checksum)

    [stored_url] = [entry["url"] for entry in json.loads(storage.read_text())["_default"].values()]

    # A new client, started from scratch, finds the URL the first one stored
    # (on a thread: tuspy blocks, and the server runs in this event loop).
    # It retries as tus clients do on 423 (the upload held by another request).
    def new_client():
        return TusClient(endpoint, headers=client_headers(client)).uploader(
            str(source), chunk_size=CHUNK, store_url=True, url_storage=FileStorage(str(storage)),
            upload_checksum=True, retries=3, retry_delay=1)

    uploader = await asyncio.to_thread(new_client)
    assert uploader.url == stored_url
    assert uploader.offset == killed_at  # it asked the server (HEAD) where to go on from
    await asyncio.to_thread(uploader.upload)

    upload_id = stored_url.rsplit("/", 1)[1]
    assert await asyncio.to_thread(file_sha256, config.import_dir / "uploads" / f"{upload_id}.csv") == expected
    assert await db.one('SELECT "offset", size, sha256 FROM uploads') == (SIZE, SIZE, expected)


async def api_session(db_url: str) -> aiohttp.ClientSession:
    """Every call this file makes to a server process goes through here, signed in as an admin."""
    return aiohttp.ClientSession(headers={"Tus-Resumable": "1.0.0", **await admin_headers(db_url)})


async def tus_upload(session: aiohttp.ClientSession, url: str, size: int, body) -> int:
    async with session.post(f"{url}/uploads", headers={"Upload-Length": str(size)}) as resp:
        assert resp.status == 201, await resp.text()
        location = resp.headers["Location"]
    async with session.patch(url + location, data=body, headers={
            "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}) as resp:
        assert resp.status == 204, await resp.text()
        return int(resp.headers["Upload-Offset"])


async def generated(total: int):
    block = random.Random(5).randbytes(1024**2)
    for _ in range(total // len(block)):
        yield block


async def test_a_200_mb_patch_grows_the_server_rss_by_less_than_50_mb(db_url, tmp_path):
    env = server_env(DATABASE_URL=db_url, IMPORT_DIR=str(tmp_path))
    async with ServerProcess(env, tmp_path / "server.log") as server, await api_session(db_url) as session:
        await tus_upload(session, server.url, 4 * 1024**2, generated(4 * 1024**2))  # warm up
        async with RssGrowth(server.pid) as rss:
            offset = await tus_upload(session, server.url, SIZE, generated(SIZE))
    baseline, peak, growth_mb = rss.baseline, rss.peak, rss.growth_mb
    print(f"\n200 MB in one PATCH: server RSS {baseline / 1024**2:.0f} MB -> peak {peak / 1024**2:.0f} MB "
          f"(+{growth_mb:.1f} MB)", file=sys.stderr)
    assert offset == SIZE
    assert growth_mb < 50
