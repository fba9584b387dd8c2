"""The page uploads resumably: reloaded mid-upload, the same file chosen again goes on
from the server's offset (not from zero), and then it is imported."""
from __future__ import annotations

import asyncio
import dataclasses

import pytest
from playwright.async_api import expect

from server.app import create_app
from server.generate import generate

from .conftest import sign_in
from .pages import wait_for_status

pytestmark = pytest.mark.browser

CHUNK = 256 * 1024
ROWS = 6000  # about 6 MB: two dozen chunks, 0.4 s each


async def slow_patches(route) -> None:
    """Each PATCH waits a little, so that a reload finds the upload half done."""
    if route.request.method == "PATCH":
        await asyncio.sleep(0.4)
    try:
        await route.continue_()
    except Exception:  # the page went away (reloaded) while this one waited
        pass


async def server_offset(db) -> int:
    return await db.value('SELECT coalesce(max("offset"), 0) FROM uploads')


async def test_a_reloaded_upload_continues_from_the_servers_offset_and_imports(
        page, aiohttp_server, config, db, tmp_path):
    server = await aiohttp_server(create_app(dataclasses.replace(config, tus_page_chunk_bytes=CHUNK)))
    url = str(server.make_url("/")).rstrip("/")
    await sign_in(page, url, config.database_url)
    path = tmp_path / "resumable customers.csv"
    generate(path, ROWS, about_bytes=900)
    size = path.stat().st_size
    patches: list[int] = []
    page.on("request", lambda request: request.method == "PATCH" and patches.append(
        int(request.headers["upload-offset"])))
    await page.route("**/uploads/*", slow_patches)

    await page.goto(url)
    await expect(page.locator("#connection")).to_have_text("Live")
    await page.get_by_label("CSV file", exact=True).set_input_files(str(path))
    await page.get_by_role("button", name="Start import").click()
    await expect(page.locator("#upload-percent")).to_contain_text("%")
    while await server_offset(db) < 4 * CHUNK:
        await asyncio.sleep(0.05)
    assert patches[0] == 0
    # Bytes, percent, speed and time left, while it goes.
    await expect(page.locator("#upload-text")).to_contain_text(" of 6.")
    await expect(page.locator("#upload-speed")).to_contain_text("/s")
    await expect(page.locator("#upload-eta")).to_contain_text("left")
    page.watch.accept_leaving = True  # the page asks first (an upload is running): leave
    await page.reload()
    assert [d.split(":")[0] for d in page.watch.dialogs] == ["beforeunload"]
    reached = await server_offset(db)
    assert 0 < reached < size

    await expect(page.locator("#connection")).to_have_text("Live")
    patches.clear()
    await page.get_by_label("CSV file", exact=True).set_input_files(str(path))
    await page.get_by_role("button", name="Start import").click()
    await expect(page.locator("#upload-message")).to_contain_text("Continuing an earlier upload of this file")
    await wait_for_status(page, ("completed", "failed", "cancelled"))

    assert patches and patches[0] >= reached, (patches, reached)  # not from zero
    job = await db.value("SELECT import_job_json(j) FROM import_jobs j ORDER BY id DESC LIMIT 1")
    assert (job["status"], job["filename"], job["inserted"], job["bytes_total"]) == \
        ("completed", "resumable customers.csv", ROWS, size)
    assert await db.value("SELECT count(*) FROM uploads") == 0  # imported: the file is the job's
