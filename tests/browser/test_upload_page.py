"""Uploads in the page: leaving mid-upload asks first, an upload can be cancelled,
and a file dropped beside the drop zone never makes the browser leave the page."""
from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import expect

from server.generate import generate

pytestmark = pytest.mark.browser


async def slow_uploads(page, seconds: float = 1.5) -> list[str]:
    """Each tus request held a while, so the test can act mid-upload; the methods seen are returned."""
    seen: list[str] = []

    async def hold(route):
        seen.append(route.request.method)
        if route.request.method == "PATCH":
            await asyncio.sleep(seconds)
        await route.continue_()
    await page.route("**/uploads**", hold)
    return seen


async def start_upload(page, path) -> None:
    await page.get_by_label("CSV file", exact=True).set_input_files(str(path))
    await page.get_by_role("button", name="Start import").click()
    await expect(page.locator("#upload-progress")).to_be_visible()


async def test_leaving_during_an_upload_asks_first(page, live_app, tmp_path):
    url, _ = live_app
    path = tmp_path / "leave.csv"
    generate(path, 2_000)
    await page.goto(url)
    await slow_uploads(page, 4)
    await start_upload(page, path)
    await page.close(run_before_unload=True)  # the test's answer is "stay"
    for _ in range(50):
        if page.watch.dialogs:
            break
        await asyncio.sleep(0.1)
    assert [d.split(":")[0] for d in page.watch.dialogs] == ["beforeunload"]
    assert not page.is_closed()


async def test_an_upload_can_be_cancelled_and_the_server_is_told(page, live_app, tmp_path, db):
    url, _ = live_app
    path = tmp_path / "cancel.csv"
    generate(path, 2_000)
    await page.goto(url)
    seen = await slow_uploads(page, 3)
    await start_upload(page, path)
    await page.get_by_role("button", name="Cancel upload").click()
    await expect(page.locator("#upload-message")).to_have_text("The upload was cancelled; nothing was imported.")
    await expect(page.locator("#upload-progress")).to_be_hidden()
    await expect(page.get_by_role("button", name="Start import")).to_be_enabled()  # the file is still chosen
    for _ in range(50):
        if "DELETE" in seen:
            break
        await asyncio.sleep(0.1)
    assert "DELETE" in seen
    await asyncio.sleep(3.5)  # the held PATCH ends; still no job
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
