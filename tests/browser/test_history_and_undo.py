"""Undo on the page (a dry run's counts, then a question) and a customer's history in its dialog."""
from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.importing import HEADER, TERMINAL, import_file, row, wait_for_status, write_csv

pytestmark = pytest.mark.browser


async def test_undo_shows_the_dry_runs_counts_and_starts_only_when_asked(page, live_app, config, db):
    url, app = live_app
    await import_file(app, write_csv(config.import_dir / "base.csv", [HEADER, row(1, "U1"), row(2, "U2")]))
    later = await import_file(app, write_csv(config.import_dir / "later.csv", [
        HEADER, row(1, "U1", "Changed"), row(3, "U3"), row(4, "U4")]))
    await page.goto(url)
    await page.get_by_text("Import history").click()
    newest = page.locator(f'#history-body tr[data-job="{later["id"]}"]')
    await newest.get_by_role("button", name="Undo this import").click()

    question = page.get_by_role("dialog", name=f"Undo import {later['id']}?")
    await expect(question.get_by_role("listitem")).to_have_text([
        "2 customers it added would be deleted",
        "1 customers it changed would get their values back",
        "0 customers changed since would be left as they are"])
    await question.get_by_role("button", name="Keep the import").click()
    await expect(question).to_have_count(0)
    assert await db.value("SELECT count(*) FROM customers") == 4, "kept: nothing changed"

    await newest.get_by_role("button", name="Undo this import").click()
    await question.get_by_role("button", name="Undo this import").click()
    await expect(page.locator("#history-message")).to_contain_text(f"Undo of import {later['id']} started")
    undo = await db.value("SELECT max(id) FROM import_jobs WHERE kind = 'undo'")
    assert (await wait_for_status(app, undo, TERMINAL))["status"] == "completed"
    assert await db.all("SELECT customer_id, first_name FROM customers ORDER BY 1") == [("U1", "Ann"), ("U2", "Ann")]
    # The import panel follows the undo as it follows an import, in customers instead of bytes.
    await expect(page.locator("#job-file")).to_have_text(f"undo of import {later['id']} (later.csv)")
    await expect(page.locator("#job-bytes")).to_have_text("3 customers / 3 customers")


async def test_the_customer_dialog_shows_what_changed_it_and_by_what(page, live_app, config, db):
    url, app = live_app
    first = await import_file(app, write_csv(config.import_dir / "a.csv", [HEADER, row(1, "H1", "Ann")]))
    second = await import_file(app, write_csv(config.import_dir / "b.csv", [HEADER, row(1, "H1", "Bea")]))
    await page.goto(url)
    await page.get_by_role("button", name="Edit Bea Lee").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_text("History", exact=True).click()
    items = dialog.locator("#customer-history-list > li")
    await expect(items).to_have_count(2)
    await expect(items.nth(0)).to_contain_text(f"Changed by import {second['id']}, line 2")
    await expect(items.nth(0).locator(".changes li")).to_have_text([
        "First Name: Ann → Bea", "Email: ann@example.com → bea@example.com"])
    await expect(items.nth(1)).to_contain_text(f"Added by import {first['id']}, line 2")
