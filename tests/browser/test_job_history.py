"""Import history on the page: every job with its file, who started it, when, counters and links."""
from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from server.importer import jobs
from server.keys import pool_key, runner_key
from tests.importing import HEADER, import_file, wait_for_status, write_csv

pytestmark = pytest.mark.browser


async def test_the_history_lists_past_jobs_newest_first_with_who_when_and_counters(page, live_app, config):
    url, app = live_app
    clean = write_csv(config.import_dir / "first.csv",
                      [HEADER] + [f"{n},H{n},Ann,Lee,Acme,Oslo,Norway,1,,a@b.c,2021-01-01,w,x" for n in range(1, 6)])
    first = await import_file(app, clean)
    bad = write_csv(config.import_dir / "second.csv",
                    [HEADER, "1,B1,Ann,Lee,Acme,Oslo,Norway,1,,a@b.c,not a date,w,x", "2,B2,Ann,Lee,Acme,Oslo,Norway,1,,a@b.c,2021-01-01,w,x"])
    # Started by someone through the API: the history names them.
    second = await jobs.create(app[pool_key], filename=bad.name, path=bad, bytes_total=bad.stat().st_size,
                               created_by="alice")
    app[runner_key].wake()
    await wait_for_status(app, second["id"], ("completed",))

    await page.goto(url)
    await page.get_by_text("Import history").click()
    rows = page.locator("#history-body tr")
    await expect(rows).to_have_count(2)
    newest, oldest = rows.nth(0), rows.nth(1)
    await expect(newest.locator("td")).to_have_text(
        [str(second["id"]), "completed", "1", "1", "second.csv", re.compile(r".+"), re.compile(r"\d+\.\d s"),
         "alice", "Its customersRejected rows (CSV)Undo this import"])
    await expect(oldest.locator("td").nth(4)).to_have_text("first.csv")
    await expect(oldest.locator("td").nth(7)).to_have_text("command line")
    await expect(oldest.locator("td").nth(2)).to_have_text("5")
    await expect(oldest.get_by_role("link")).to_have_count(0)  # no rejects, no link
    link = newest.get_by_role("link", name="Rejected rows (CSV)")
    assert await link.get_attribute("href") == f"/import/jobs/{second['id']}/rejects.csv"
    assert first["id"] < second["id"]

