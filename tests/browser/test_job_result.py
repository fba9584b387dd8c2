"""What a finished or paused import says on the page: the outcome in words, the
reasons rows were rejected, the columns ignored, and a pause that is honest."""
from __future__ import annotations

import pytest
from playwright.async_api import expect

from server.generate import generate
from server.importer import jobs
from server.keys import pool_key, runner_key
from tests.importing import HEADER, write_csv

from .conftest import screenshot
from .pages import wait_for_status

pytestmark = pytest.mark.browser


async def start_job(app, path):
    job = await jobs.create(app[pool_key], filename=path.name, path=path, bytes_total=path.stat().st_size)
    app[runner_key].wake()
    return job


def customer_line(n: int, date: str) -> str:
    return f"{n},R{n},Ann,Lee,Acme,Oslo,Norway,1,,ann{n}@example.com,{date},https://e.com,x"


async def test_a_file_whose_rows_were_all_rejected_says_so_with_its_reasons(page, live_app, config, db):
    url, app = live_app
    # 300 rows with a US date, 100 with too few fields, and a misspelt column the import ignores.
    header = HEADER.replace("First Name", "FIRSNAME")
    lines = [header] + [customer_line(n, f"02/{n % 28 + 1:02d}/2023") for n in range(1, 301)]
    lines += [f"{n},R{n},short" for n in range(301, 401)]
    path = write_csv(config.import_dir / "all rejected.csv", lines)
    await page.goto(url)
    await start_job(app, path)
    await wait_for_status(page, ("completed",))

    outcome = page.locator("#job-outcome")
    await expect(outcome).to_have_attribute("data-tone", "warning")
    await expect(page.locator("#job-outcome-text")).to_have_text(
        "Completed with problems: 0 of 400 rows imported (400 rejected, 1 column ignored)")
    reasons = page.get_by_role("list", name="Why rows were rejected").get_by_role("listitem")
    await expect(reasons).to_have_count(2)
    await expect(reasons.nth(0)).to_have_text("300 rows: Subscription Date … does not match the date layout YYYY-MM-DD (first on line 2)")
    await expect(reasons.nth(1)).to_contain_text("100 rows: expected 13 fields, found 3")
    await expect(page.locator("#job-ignored")).to_have_text("Ignored column (not customer fields): FIRSNAME.")
    await expect(page.locator("#job-duration")).to_contain_text("Took ")
    await expect(page.get_by_role("link", name="Download rejected rows (400, CSV)")).to_be_visible()
    # The end was said once through the live region.
    await expect(page.locator("#announcer")).to_have_text(
        "Import of all rejected.csv completed with problems: 0 of 400 rows imported (400 rejected, 1 column ignored)")
    await screenshot(page, "job-completed-with-problems-desktop")


async def test_a_clean_import_shows_no_rejects_link_and_says_completed(page, live_app, config):
    url, app = live_app
    path = write_csv(config.import_dir / "clean.csv", [HEADER] + [customer_line(n, "2021-05-06") for n in range(1, 51)])
    await page.goto(url)
    await start_job(app, path)
    await wait_for_status(page, ("completed",))
    await expect(page.locator("#job-outcome-text")).to_have_text("Completed: 50 of 50 rows imported")
    await expect(page.locator("#job-outcome")).to_have_attribute("data-tone", "ok")
    await expect(page.locator("#rejects-link")).to_be_hidden()
    await expect(page.locator("#job-reasons")).to_be_hidden()
    await expect(page.locator("#job-ignored")).to_be_hidden()


async def test_a_pause_shows_pausing_until_the_batch_in_hand_has_landed(page, live_app, config, db):
    url, app = live_app
    path = config.import_dir / "long.csv"
    generate(path, 20_000, about_bytes=600)
    await page.goto(url)
    job = await start_job(app, path)
    await wait_for_status(page, ("running",))
    async with db.pool.acquire() as conn, conn.cursor() as cur:
        # The next batch cannot write its customers while the test holds this lock.
        await cur.execute("BEGIN")
        await cur.execute("LOCK TABLE customers IN SHARE MODE")
        await page.get_by_role("button", name="Pause").click()
        await expect(page.locator("#job-status")).to_have_text("pausing…")
        assert (await jobs.get(app[pool_key], job["id"]))["worker"] is not None
        await expect(page.locator("#job-outcome")).to_be_hidden()
        await cur.execute("COMMIT")
    await expect(page.locator("#job-status")).to_have_text("paused")
    stopped = await jobs.get(app[pool_key], job["id"])
    assert stopped["worker"] is None and stopped["status"] == "paused"
    await expect(page.locator("#job-outcome-text")).to_have_text(
        f"Paused after {stopped['inserted']:,} of {stopped['rows_done']:,} rows imported")
