"""Uploads in the page: leaving mid-upload asks first, an upload can be cancelled,
and a file dropped beside the drop zone never makes the browser leave the page."""
from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import expect

from server.generate import generate

pytestmark = pytest.mark.browser


class HeldUploads:
    """Every tus PATCH held until released, so the test acts mid-upload; the methods seen are kept."""

    def __init__(self, page) -> None:
        self.seen: list[str] = []
        self.release = asyncio.Event()
        self.delete_seen = asyncio.Event()
        self.patch_ended = asyncio.Event()  # a PATCH got its answer, or was given up
        for event in ("requestfinished", "requestfailed"):
            page.on(event, self._ended)

    def _ended(self, request) -> None:
        if request.method == "PATCH" and "/uploads" in request.url:
            self.patch_ended.set()

    async def route(self, route) -> None:
        method = route.request.method
        self.seen.append(method)
        if method == "DELETE":
            self.delete_seen.set()
        if method == "PATCH":
            await self.release.wait()
        try:
            await route.continue_()
        except Exception:  # the page gave this request up meanwhile (a cancelled upload)
            pass


async def hold_uploads(page) -> HeldUploads:
    held = HeldUploads(page)
    await page.route("**/uploads**", held.route)
    return held


async def start_upload(page, path) -> None:
    await page.get_by_label("CSV file", exact=True).set_input_files(str(path))
    await page.get_by_role("button", name="Start import").click()
    await expect(page.locator("#upload-progress")).to_be_visible()


async def test_leaving_during_an_upload_asks_first(page, live_app, tmp_path):
    url, _ = live_app
    path = tmp_path / "leave.csv"
    generate(path, 2_000)
    await page.goto(url)
    held = await hold_uploads(page)
    await start_upload(page, path)
    await page.close(run_before_unload=True)  # the test's answer is "stay"
    assert await page.watch.answered() == "beforeunload"
    held.release.set()
    assert [d.split(":")[0] for d in page.watch.dialogs] == ["beforeunload"]
    assert not page.is_closed()


async def test_an_upload_can_be_cancelled_and_the_server_is_told(page, live_app, tmp_path, db):
    url, _ = live_app
    path = tmp_path / "cancel.csv"
    generate(path, 2_000)
    await page.goto(url)
    held = await hold_uploads(page)
    await start_upload(page, path)
    await page.get_by_role("button", name="Cancel upload").click()
    await expect(page.locator("#upload-message")).to_have_text("The upload was cancelled; nothing was imported.")
    await expect(page.locator("#upload-progress")).to_be_hidden()
    await expect(page.get_by_role("button", name="Start import")).to_be_enabled()  # the file is still chosen
    await asyncio.wait_for(held.delete_seen.wait(), 10)
    held.release.set()  # the held PATCH goes on and ends; still no job after it
    await asyncio.wait_for(held.patch_ended.wait(), 10)
    assert await db.value("SELECT count(*) FROM import_jobs") == 0


async def test_a_file_dropped_beside_the_zone_is_caught(page, live_app):
    url, _ = live_app
    await page.goto(url)
    prevented = await page.evaluate("""() => {
      const data = new DataTransfer();
      data.items.add(new File(['a,b\\n'], 'stray.csv', {type: 'text/csv'}));
      const results = [];
      for (const type of ['dragover', 'drop']) {
        const event = new DragEvent(type, {dataTransfer: data, bubbles: true, cancelable: true});
        document.getElementById('customers-heading').dispatchEvent(event);
        results.push(event.defaultPrevented);
      }
      return results;
    }""")
    assert prevented == [True, True]
    assert page.url == url + "/"
