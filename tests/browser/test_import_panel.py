"""The live import panel: upload, progress to 100%, reload and server restart mid-import."""
from __future__ import annotations

import csv
from decimal import ROUND_HALF_UP, Decimal

import pytest
from playwright.async_api import expect

from server.generate import generate
from server.importer import jobs
from server.keys import pool_key, runner_key
from tests.waiting import eventually

from .conftest import DESKTOP, PHONE, screenshot, sign_in
from .pages import WATCH_BAR, bar, count, wait_for_bar_between, wait_for_status

pytestmark = pytest.mark.browser

def to_fixed_1(value: float) -> str:
    """JavaScript's toFixed(1): a tie rounds up (6.25 -> 6.3), where Python's format rounds to even."""
    return str(Decimal(value).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


LAST_JOB = "SELECT import_job_json(j) FROM import_jobs j ORDER BY id DESC LIMIT 1"
COUNTERS = (("inserted", "inserted"), ("updated", "updated"), ("skipped", "skipped_manual"),
            ("rejected", "rejected"))


def assert_counters(shown: dict, job: dict) -> None:
    for on_page, field in COUNTERS:
        assert count(shown[on_page]) == job[field], (on_page, shown, job)


async def assert_never_went_back(page) -> None:
    values = [v for _, v in await page.evaluate("window.__barValues")]
    assert values, "the bar never moved"
    assert values == sorted(values), f"the bar went backwards: {values}"


async def test_an_uploaded_file_reaches_100_percent_with_the_counters_of_the_database(page, live_app, db, tmp_path):
    url, _ = live_app
    path = tmp_path / "customers upload.csv"
    generate(path, 15_000, about_bytes=800)  # ~14 MB: a few seconds in 64 KB batches
    with open(path, newline="", encoding="utf-8") as f:
        last_id = list(csv.reader(f))[-1][1]

    await page.goto(url)
    await expect(page.locator("#connection")).to_have_text("Live")
    await page.evaluate(WATCH_BAR)
    start = page.get_by_role("button", name="Start import")
    await expect(start).to_be_disabled()  # nothing chosen yet
    await page.get_by_label("CSV file", exact=True).set_input_files(str(path))
    await page.evaluate("""() => { window.__uploadTexts = [];
      new MutationObserver(() => window.__uploadTexts.push(document.getElementById('upload-text').textContent))
        .observe(document.getElementById('upload-text'), {childList: true, characterData: true, subtree: true}); }""")
    await start.click()

    await wait_for_bar_between(page, 0.2, 0.7)
    await expect(page.locator("#recent-body tr").first).to_be_visible()
    await screenshot(page, "import-running-desktop")
    await page.set_viewport_size(PHONE)
    await screenshot(page, "import-running-phone", full_page=True)
    await page.set_viewport_size(DESKTOP)
    # A file chosen while the job runs still cannot start a second import.
    await page.get_by_label("CSV file", exact=True).set_input_files(str(path))
    shown = await bar(page)
    if shown["status"] == "running":  # it may have finished during the screenshots
        await expect(start).to_be_disabled()
        await expect(page.get_by_role("button", name="Pause")).to_be_enabled()
    assert 0 < shown["now"] <= shown["max"]
    await expect(page.locator("#recent-body tr").first).to_be_visible()

    # The upload had its own byte bar, fed by XMLHttpRequest progress, up to the whole file.
    upload_texts = await page.evaluate("window.__uploadTexts")
    assert upload_texts and upload_texts[-1].endswith("of 13.9 MB"), upload_texts

    await wait_for_status(page, ("completed", "failed", "cancelled"))
    job = await db.value(LAST_JOB)
    assert job["status"] == "completed", job
    shown = await bar(page)
    assert shown["status"] == "completed"
    assert shown["now"] == shown["max"] == job["bytes_total"] == job["bytes_done"] == path.stat().st_size
    assert shown["min"] == 0 and shown["percent"] == "100.0%"
    assert_counters(shown, job)
    assert job["inserted"] == await db.value("SELECT count(*) FROM customers") == 15_000
    await assert_never_went_back(page)
    # The recent rows end on the file's last row.
    await expect(page.locator("#recent-body tr").first.locator("td").nth(1)).to_have_text(last_id)
    # Nothing was rejected, so there is nothing to download.
    assert job["rejected"] == 0
    await expect(page.locator("#rejects-link")).to_be_hidden()
    await expect(page.locator("#job-outcome-text")).to_have_text("Completed: 15,000 of 15,000 rows imported")
    await expect(start).to_be_enabled()  # the job is over and a file is chosen
    await screenshot(page, "import-completed-desktop", full_page=True)


async def test_a_reload_mid_import_shows_the_persisted_progress_before_any_event(page, live_app, config, db):
    url, app = live_app
    path = config.import_dir / "reload.csv"
    generate(path, 30_000, about_bytes=800)
    await jobs.create(app[pool_key], filename=path.name, path=path, bytes_total=path.stat().st_size)
    app[runner_key].wake()
    await page.goto(url)
    await wait_for_bar_between(page, 0.02, 0.5)
    before = (await bar(page))["now"]

    # After the reload the event stream is held unanswered, so all the page can
    # show is what it read from GET /import, which the test records.
    held, reads = [], []

    async def read_job(route):
        response = await route.fetch()
        reads.append(await response.json())
        await route.fulfill(response=response)

    await page.route("**/import/events", lambda route: held.append(route))
    await page.route("**/import", read_job)
    await page.reload()
    await page.wait_for_function("Number(document.getElementById('job-bar').getAttribute('aria-valuenow')) > 0")
    shown = await bar(page)
    await eventually(lambda: held)  # the page subscribes right after it rendered what it read
    assert len(held) == 1 and len(reads) == 1, (held, reads)
    persisted = reads[0]
    assert persisted["status"] == "running"
    assert shown["now"] == persisted["bytes_done"] >= before
    assert shown["max"] == persisted["bytes_total"]
    assert shown["percent"] == f"{to_fixed_1(persisted['percent'])}%"
    assert_counters(shown, persisted)
    assert (await db.value(LAST_JOB))["bytes_done"] >= persisted["bytes_done"]

    # The stream fails: the page reads GET /import again, subscribes again, and goes on.
    await page.unroute("**/import/events")
    await page.evaluate(WATCH_BAR)
    for route in held:
        await route.abort()
    await expect(page.locator("#connection")).to_have_text("Live")
    await page.wait_for_function(f"Number(document.getElementById('job-bar').getAttribute('aria-valuenow')) > {shown['now']}")
    assert len(reads) >= 2

    await page.get_by_role("button", name="Pause").click()
    await wait_for_status(page, ("paused",))
    await expect(page.get_by_role("button", name="Resume")).to_be_enabled()
    await expect(page.locator("#pause-button")).to_be_hidden()  # only the controls that apply are shown
    assert (await db.value(LAST_JOB))["status"] == "paused"
    await screenshot(page, "import-paused-desktop")
    await page.get_by_role("button", name="Resume").click()
    await wait_for_status(page, ("running",))

    page.watch.accept_dialogs = True
    await page.get_by_role("button", name="Cancel").click()
    await wait_for_status(page, ("cancelled",))
    await assert_never_went_back(page)
    assert (await db.value(LAST_JOB))["status"] == "cancelled"
    for control in ("#pause-button", "#resume-button", "#cancel-button"):
        await expect(page.locator(control)).to_be_hidden()


@pytest.mark.slow
async def test_the_page_recovers_by_itself_from_a_server_restart_mid_import(page, server_process, db, db_url):
    path = server_process.import_dir / "restart.csv"
    generate(path, 16_000, about_bytes=800)
    await server_process.start()
    await sign_in(page, server_process.url, db_url)
    await jobs.create(db.pool, filename=path.name, path=path, bytes_total=path.stat().st_size)
    await page.goto(server_process.url)
    await page.evaluate(WATCH_BAR)
    await wait_for_bar_between(page, 0.03, 0.6)

    server_process.kill()
    await expect(page.locator("#connection")).not_to_have_text("Live")
    before = await bar(page)
    # The page keeps trying the dead port meanwhile: one of its tries fails before the restart.
    await page.wait_for_event("requestfailed", lambda request: "/import" in request.url, timeout=30_000)
    await server_process.start()

    await expect(page.locator("#connection")).to_have_text("Live", timeout=15_000)
    await wait_for_status(page, ("completed", "failed", "cancelled"), timeout=120_000)
    job = await db.value(LAST_JOB)
    assert job["status"] == "completed", job
    shown = await bar(page)
    assert shown["now"] == shown["max"] == job["bytes_total"] > before["now"]
    assert_counters(shown, job)
    assert job["inserted"] == await db.value("SELECT count(*) FROM customers") == 16_000
    assert await db.value("SELECT count(*) FROM import_jobs") == 1, "the same job went on"
    await assert_never_went_back(page)
