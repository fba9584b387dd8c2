"""The customer form: refuses a date that is none, speaks plainly at the field, asks
before throwing edits away, and explains (and releases) the hand-edit rule."""
from __future__ import annotations

import pytest
from playwright.async_api import expect

from .pages import insert_customers

pytestmark = pytest.mark.browser

ROWS = "#list-spacer .list-row"


async def open_new(page):
    await page.get_by_role("button", name="New customer").click()
    return page.get_by_role("dialog")


async def test_a_date_that_is_no_date_is_refused_at_its_field(page, live_app, db):
    url, _ = live_app
    await page.goto(url)
    dialog = await open_new(page)
    await dialog.get_by_label("Customer Id").fill("DATE-1")
    date = dialog.get_by_label("Subscription date")
    await date.click()
    await page.keyboard.type("02312023")  # February 31st, as a person types it
    assert await date.evaluate("d => d.validity.badInput") is True
    await dialog.get_by_role("button", name="Save").click()
    await expect(page.locator("#e-subscription_date")).to_have_text(
        "This is not a date of the calendar (check the day and the month), or leave the field empty.")
    await expect(date).to_have_attribute("aria-invalid", "true")
    await expect(date).to_be_focused()
    await expect(dialog).to_be_visible()
    assert await db.value("SELECT count(*) FROM customers") == 0  # nothing saved as "no date"


async def test_messages_are_plain_words_at_their_field(page, live_app, db):
    url, _ = live_app
    await insert_customers(db, 3)
    await page.goto(url)
    dialog = await open_new(page)
    await dialog.get_by_label("Customer Id").fill("C00000002")  # taken
    await dialog.get_by_role("button", name="Save").click()
    await expect(page.locator("#e-customer_id")).to_have_text(
        "Another customer already has this Customer Id; choose another one.")
    await expect(dialog.get_by_label("Customer Id")).to_be_focused()

    await dialog.get_by_label("Customer Id").fill("NEW-2")
    await dialog.get_by_label("Email").fill("not-an-address")
    await dialog.get_by_role("button", name="Save").click()
    # Refused at the field before the server is asked, in the same plain words.
    await expect(page.locator("#e-email")).to_have_text(
        "This is not an email address: it should look like name@example.com, without spaces.")
    await expect(page.locator("#e-customer_id")).to_have_text("")

    # The server gone: words, and the input kept.
    await page.route("**/customers", lambda route: route.abort())
    await dialog.get_by_label("Email").fill("ann@example.com")
    await dialog.get_by_role("button", name="Save").click()
    await expect(page.locator("#form-message")).to_have_text(
        "The server could not be reached, so nothing was saved. Your input is still here: try again in a moment.")
    await expect(dialog.get_by_label("Customer Id")).to_have_value("NEW-2")


async def test_esc_and_close_ask_before_throwing_unsaved_edits_away(page, live_app, db):
    url, _ = live_app
    await page.goto(url)
    dialog = await open_new(page)
    await page.keyboard.press("Escape")  # nothing typed: closes without a question
    await expect(dialog).to_be_hidden()
    assert page.watch.dialogs == []

    dialog = await open_new(page)
    await dialog.get_by_label("Customer Id").fill("KEEP-ME")
    await page.keyboard.press("Escape")  # the test dismisses the question: the edit stays
    await expect(dialog).to_be_visible()
    assert page.watch.dialogs == ["confirm: Discard your unsaved changes to this customer?"]
    await expect(dialog.get_by_label("Customer Id")).to_have_value("KEEP-ME")
    page.watch.accept_dialogs = True
    await dialog.get_by_role("button", name="Close").click()
    await expect(dialog).to_be_hidden()
    assert len(page.watch.dialogs) == 2


async def test_the_hand_edit_rule_is_explained_and_can_be_released(page, live_app, db):
    url, _ = live_app
    await insert_customers(db, 3)
    await page.goto(url)
    row = page.locator(f'{ROWS}[data-index="1"]')
    await row.get_by_role("button", name="Edit First2 Last2").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("Saving marks this customer as edited by hand: later imports leave it alone")
    await expect(dialog.get_by_role("button", name="Let imports update this customer again")).to_be_hidden()
    await dialog.get_by_label("City").fill("Tromsø")
    await dialog.get_by_role("button", name="Save").click()
    await expect(dialog).to_be_hidden()
    # Focus is back on the row the person edited.
    await expect(row.get_by_role("button", name="Edit First2 Last2")).to_be_focused()
    await expect(row).to_contain_text("Tromsø")

    await page.keyboard.press("Enter")  # the focused Edit button opens it again
    await expect(dialog).to_contain_text("Edited by hand by admin on")
    await dialog.get_by_role("button", name="Let imports update this customer again").click()
    await expect(dialog).to_contain_text("Imports update this customer again.")
    assert await db.value("SELECT updated_manually_at FROM customers WHERE customer_id = 'C00000002'") is None
    await dialog.get_by_role("button", name="Close").click()
    await expect(row).not_to_have_class("list-row manual")
