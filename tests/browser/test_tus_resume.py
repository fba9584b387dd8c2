"""The page uploads resumably: reloaded mid-upload, the same file chosen again goes on
from the server's offset (not from zero), and then it is imported; a connection
dropped mid-chunk is retried by itself from the server's offset; another file of
the same name starts afresh."""
from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import hashlib
import os
from pathlib import Path

import pytest
from playwright.async_api import expect

from server.app import create_app
from server.generate import generate
from tests.processes import admin_headers
from tests.waiting import eventually

from .conftest import sign_in
from .pages import wait_for_status

pytestmark = pytest.mark.browser

CHUNK = 256 * 1024
ROWS = 6000  # about 6 MB: two dozen chunks


class HeldPatches:
    """A route handler that holds every PATCH from `from_offset` on, so that the upload
    stops at a known offset however fast or slow the machine is, until `release()`. The
    PATCHes held until then are dropped (their page has gone); later ones go through."""

    def __init__(self, from_offset: int):
        self.from_offset = from_offset
        self._released = asyncio.Event()

    def release(self) -> None:
        self._released.set()

    async def __call__(self, route) -> None:
        request = route.request
        if (request.method == "PATCH" and not self._released.is_set()
                and int(request.headers.get("upload-offset", "-1")) >= self.from_offset):
            await self._released.wait()
            with contextlib.suppress(Exception):
                await route.abort()
            return
        with contextlib.suppress(Exception):  # the page went away (reloaded) meanwhile
            await route.continue_()


async def server_offset(db) -> int:
    return await db.value('SELECT coalesce(max("offset"), 0) FROM uploads')


async def server_reaches(db, offset: int) -> None:
    async def reached() -> bool:
        return await server_offset(db) == offset
    await eventually(reached)


async def page_on_small_chunks(page, aiohttp_server, config):
    """A server whose page uploads in CHUNK-sized PATCHes, and the page signed in to it."""
    server = await aiohttp_server(create_app(dataclasses.replace(config, tus_page_chunk_bytes=CHUNK)))
    url = str(server.make_url("/")).rstrip("/")
    await sign_in(page, url, config.database_url)
    return server, url


def patch_offsets(page) -> list[int]:
    """The Upload-Offset of every PATCH the page sends from now on, in order."""
    offsets: list[int] = []
    page.on("request", lambda request: request.method == "PATCH" and offsets.append(
        int(request.headers["upload-offset"])))
    return offsets


async def choose_and_start(page, path: Path) -> None:
    await page.get_by_label("CSV file", exact=True).set_input_files(str(path))
    await page.get_by_role("button", name="Start import").click()


async def test_a_reloaded_upload_continues_from_the_servers_offset_and_imports(
        page, aiohttp_server, config, db, tmp_path):
    _, url = await page_on_small_chunks(page, aiohttp_server, config)
    path = tmp_path / "resumable customers.csv"
    generate(path, ROWS, about_bytes=900)
    size = path.stat().st_size
    patches = patch_offsets(page)
    held = HeldPatches(4 * CHUNK)
    await page.route("**/uploads/*", held)

    await page.goto(url)
    await expect(page.locator("#connection")).to_have_text("Live")
    await choose_and_start(page, path)
    await expect(page.locator("#upload-percent")).to_contain_text("%")
    await server_reaches(db, 4 * CHUNK)
    assert patches[0] == 0
    # Bytes, percent, speed and time left, while it goes.
    await expect(page.locator("#upload-text")).to_contain_text(" of 6.")
    await expect(page.locator("#upload-speed")).to_contain_text("/s")
    await expect(page.locator("#upload-eta")).to_contain_text("left")
    page.watch.accept_leaving = True  # the page asks first (an upload is running): leave
    await page.reload()
    assert [d.split(":")[0] for d in page.watch.dialogs] == ["beforeunload"]
    reached = await server_offset(db)
    assert reached == 4 * CHUNK < size
    held.release()

    await expect(page.locator("#connection")).to_have_text("Live")
    patches.clear()
    await choose_and_start(page, path)
    await expect(page.locator("#upload-message")).to_contain_text("Continuing an earlier upload of this file")
    await wait_for_status(page, ("completed", "failed", "cancelled"))

    assert patches and patches[0] >= reached, (patches, reached)  # not from zero
    job = await db.value("SELECT import_job_json(j) FROM import_jobs j ORDER BY id DESC LIMIT 1")
    assert (job["status"], job["filename"], job["inserted"], job["bytes_total"]) == \
        ("completed", "resumable customers.csv", ROWS, size)
    assert await db.value("SELECT count(*) FROM uploads") == 0  # imported: the file is the job's


# Records every byte count the upload bar shows, so a test can see where it went after a drop.
WATCH_UPLOAD_BAR = """() => {
  window.__uploadSent = [];
  const bar = document.getElementById('upload-bar');
  new MutationObserver(() => window.__uploadSent.push(Number(bar.dataset.sent)))
    .observe(bar, {attributes: true, attributeFilter: ['data-sent']});
}"""


async def cut_short_patch(server, path: str, offset: int, data: bytes, announced: int,
                          headers: dict[str, str]) -> None:
    """A PATCH whose connection drops after `data` of its `announced` bytes were sent."""
    _, writer = await asyncio.open_connection(server.host, server.port)
    lines = [f"PATCH {path} HTTP/1.1", "Host: localhost", "Tus-Resumable: 1.0.0", f"Upload-Offset: {offset}",
             "Content-Type: application/offset+octet-stream", f"Content-Length: {announced}",
             *(f"{k}: {v}" for k, v in headers.items())]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
    await writer.drain()
    # Nothing shows what the server has read of an unfinished body (its sink writes in
    # blocks, the offset commits when the body ends): give it a moment before the drop,
    # else it may see the drop before the bytes. The caller then waits for the offset.
    await asyncio.sleep(0.2)
    writer.close()
    await writer.wait_closed()


async def test_a_connection_dropped_mid_chunk_is_retried_from_the_servers_offset(
        page, aiohttp_server, config, db, tmp_path):
    server, url = await page_on_small_chunks(page, aiohttp_server, config)
    path = tmp_path / "dropped customers.csv"
    generate(path, ROWS, about_bytes=900)
    content = path.read_bytes()
    size = len(content)
    signed = await admin_headers(config.database_url)
    patches = patch_offsets(page)
    heads: list[int] = []  # the index in `patches` at which the page asked the server (HEAD)
    dropped: list[int] = []  # the offset of the PATCH whose connection dropped
    watched = asyncio.Event()  # the test has seen the page say where it goes on from
    page.on("request", lambda request: request.method == "HEAD" and heads.append(len(patches)))

    async def drop_one_patch(route) -> None:
        request = route.request
        offset = int(request.headers.get("upload-offset", "-1"))
        if request.method == "PATCH" and not dropped and offset >= 4 * CHUNK:
            # Half the chunk reaches the server, then the network goes: the browser sees
            # a failed request, the server keeps the half that arrived (tus core).
            dropped.append(offset)
            await cut_short_patch(server, request.url.removeprefix(url), offset,
                                  content[offset:offset + CHUNK // 2], CHUNK, signed)
            await server_reaches(db, offset + CHUNK // 2)
            await route.abort("connectionreset")
            return
        if request.method == "PATCH" and dropped:
            await watched.wait()  # the rest once the page has been watched saying so
        await route.continue_()

    await page.route("**/uploads/*", drop_one_patch)
    await page.goto(url)
    await expect(page.locator("#connection")).to_have_text("Live")
    await page.evaluate(WATCH_UPLOAD_BAR)
    await choose_and_start(page, path)

    # The person does nothing: the page asks the server how much it has and goes on from there.
    await expect(page.locator("#upload-message")).to_contain_text("Continuing an earlier upload of this file")
    [dropped_at] = dropped
    resumed_at = dropped_at + CHUNK // 2
    await expect(page.locator("#upload-message")).to_contain_text(f"from {resumed_at / 1024**2:.1f} MB of")
    watched.set()
    await wait_for_status(page, ("completed", "failed", "cancelled"))
    await expect(page.locator("#job-status")).to_have_text("completed")

    failed = patches.index(dropped_at)
    assert patches[:failed] == [i * CHUNK for i in range(failed)]
    assert heads == [failed + 1], (heads, patches)  # one HEAD: after the failed PATCH, before the next
    assert patches[failed + 1] == resumed_at, patches  # from the server's offset: not 0, not the chunk's start
    assert patches[failed + 1:] == sorted(patches[failed + 1:]) and len(set(patches)) == len(patches)
    # What the person saw: the bar went on from what the server held, never back to zero.
    sent = await page.evaluate("window.__uploadSent")
    after = sent[next(i for i, value in enumerate(sent) if value >= dropped_at):]
    assert min(after) >= dropped_at and after[-1] == size, (dropped_at, after)
    job = await db.value("SELECT import_job_json(j) FROM import_jobs j ORDER BY id DESC LIMIT 1")
    assert (job["status"], job["filename"], job["inserted"], job["bytes_total"]) == \
        ("completed", "dropped customers.csv", ROWS, size)
    stored = await db.value("SELECT path FROM import_jobs ORDER BY id DESC LIMIT 1")
    assert hashlib.sha256(Path(stored).read_bytes()).hexdigest() == hashlib.sha256(content).hexdigest()
    assert await db.value("SELECT count(*) FROM customers") == ROWS


# Records every message shown under the upload form.
WATCH_UPLOAD_MESSAGE = """() => {
  window.__uploadMessages = [];
  const message = document.getElementById('upload-message');
  new MutationObserver(() => window.__uploadMessages.push(message.textContent))
    .observe(message, {childList: true, characterData: true, subtree: true});
}"""


def customer_ids(path: Path) -> set[str]:
    with open(path, newline="", encoding="utf-8") as f:
        return {record[1] for record in list(csv.reader(f))[1:]}


def another_export(first: Path, second: Path, *, same_size: bool) -> None:
    """A file of the same name with other rows: a new export (other size), or the same
    export with its first customer's Id changed (same size, later last-modified)."""
    if same_size:
        content = bytearray(first.read_bytes())
        at = content.index(b"\n1,") + 3  # the first customer's Id
        content[at:at + 1] = b"0" if content[at:at + 1] != b"0" else b"1"
        second.parent.mkdir()
        second.write_bytes(content)
    else:
        generate(second, ROWS // 2, seed=2, about_bytes=900)
    os.utime(second, (first.stat().st_mtime + 86400,) * 2)


@pytest.mark.parametrize("same_size", [False, True], ids=["other size", "same size, later"])
async def test_another_file_of_the_same_name_starts_from_zero_and_imports_only_its_rows(
        page, aiohttp_server, config, db, tmp_path, same_size):
    """The page resumes a file only when its name, size and last-modified time are the same."""
    _, url = await page_on_small_chunks(page, aiohttp_server, config)
    first, second = tmp_path / "monday" / "customers.csv", tmp_path / "tuesday" / "customers.csv"
    generate(first, ROWS, seed=1, about_bytes=900)
    another_export(first, second, same_size=same_size)
    content = second.read_bytes()
    rows = len(customer_ids(second))
    assert customer_ids(first) != customer_ids(second)
    patches = patch_offsets(page)
    held = HeldPatches(4 * CHUNK)
    await page.route("**/uploads/*", held)

    await page.goto(url)
    await expect(page.locator("#connection")).to_have_text("Live")
    await choose_and_start(page, first)
    await server_reaches(db, 4 * CHUNK)
    page.watch.accept_leaving = True
    await page.reload()
    [(interrupted, offset)] = await db.all('SELECT id, "offset" FROM uploads')
    assert offset == 4 * CHUNK < first.stat().st_size
    held.release()

    await expect(page.locator("#connection")).to_have_text("Live")
    await page.evaluate(WATCH_UPLOAD_MESSAGE)
    patches.clear()
    await choose_and_start(page, second)
    await eventually(lambda: patches)
    assert patches[0] == 0, patches  # a new upload, from its first byte
    await wait_for_status(page, ("completed", "failed", "cancelled"))
    await expect(page.locator("#job-status")).to_have_text("completed")

    assert patches == sorted(patches), patches
    messages = await page.evaluate("window.__uploadMessages")
    assert not any("Continuing" in m for m in messages), messages
    job = await db.value("SELECT import_job_json(j) FROM import_jobs j ORDER BY id DESC LIMIT 1")
    assert (job["status"], job["filename"], job["inserted"], job["bytes_total"]) == \
        ("completed", "customers.csv", rows, len(content))
    stored = await db.value("SELECT path FROM import_jobs ORDER BY id DESC LIMIT 1")
    assert Path(stored).read_bytes() == content  # that file's bytes, none of the first one's
    imported = {row[0] for row in await db.all("SELECT customer_id FROM customers")}
    assert imported == customer_ids(second)
    # The interrupted upload is left as it was, for its own file to resume (or to expire).
    assert await db.all('SELECT id, "offset" FROM uploads') == [(interrupted, offset)]


async def test_a_busy_server_is_asked_again_and_the_upload_goes_on(page, aiohttp_server, config, db, tmp_path):
    """429 (every upload slot taken, UPLOADS_MAX_CONCURRENT) is a wait, not a failure."""
    _, url = await page_on_small_chunks(page, aiohttp_server, config)
    path = tmp_path / "busy.csv"
    generate(path, 1000, about_bytes=900)
    refused: list[int] = []

    async def busy_once(route) -> None:
        if route.request.method == "PATCH" and not refused:
            refused.append(int(route.request.headers["upload-offset"]))
            await route.fulfill(status=429, headers={"Retry-After": "30", "Tus-Resumable": "1.0.0"},
                                content_type="application/json",
                                body='{"error": "4 uploads are already in progress on this server"}')
            return
        await route.continue_()

    await page.route("**/uploads/*", busy_once)
    await page.goto(url)
    await expect(page.locator("#connection")).to_have_text("Live")
    await choose_and_start(page, path)
    await wait_for_status(page, ("completed", "failed", "cancelled"))

    assert refused == [0]
    job = await db.value("SELECT import_job_json(j) FROM import_jobs j ORDER BY id DESC LIMIT 1")
    assert (job["status"], job["inserted"], job["bytes_total"]) == ("completed", 1000, path.stat().st_size)
