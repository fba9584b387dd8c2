"""Finding data in the list: a total, orders, filters, a created customer shown, search by Customer Id."""
from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.importing import HEADER, import_file, row, write_csv

from .conftest import screenshot
from .pages import insert_customers

pytestmark = pytest.mark.browser

ROWS = "#list-spacer .list-row"


async def test_a_created_customer_is_confirmed_shown_first_and_found_by_its_id(page, live_app, db):
    url, _ = live_app
    await insert_customers(db, 3_000)  # its row in id order would be far below the first page
    await page.goto(url)
    await expect(page.locator("#list-total")).to_have_text("3,000 customers in all")
    await expect(page.get_by_role("searchbox")).to_have_attribute("placeholder", "Search customers")
    await expect(page.get_by_role("searchbox")).to_have_attribute(
        "title", "Name, email, company, city, country or Customer Id")

    await page.get_by_role("button", name="New customer").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Customer Id").fill("ZX-9001-NEW")
    await page.get_by_label("First name").fill("Heather")
    await page.get_by_label("Last name").fill("Callahan")
    await page.get_by_role("button", name="Save").click()

    await expect(page.locator("#list-message")).to_have_text(
        "Customer Heather Callahan (ZX-9001-NEW) created; it is the first row, newest first.")
    await expect(page.get_by_label("Order")).to_have_value("newest")
    first = page.locator(f'{ROWS}[data-index="0"]')
    await expect(first).to_contain_text("Heather Callahan")
    await expect(first).to_have_class("list-row manual fresh")
    # Focus went to the new row, not to the page body.
    await expect(first.get_by_role("button", name="Edit Heather Callahan")).to_be_focused()
    await expect(page.locator("#announcer")).to_contain_text("Customer Heather Callahan (ZX-9001-NEW) created")
    await screenshot(page, "customer-created-desktop")

    # By its id, exact and by its start.
    for query in ("ZX-9001-NEW", "ZX-90"):
        await page.get_by_role("searchbox").fill(query)
        await expect(page.locator(ROWS)).to_have_count(1)
        await expect(page.locator(ROWS).first).to_contain_text("Heather Callahan")
    await expect(page.locator("#list-note")).to_be_visible()  # the search ignores the order chosen
    await page.get_by_role("searchbox").fill("")
    await expect(page.locator("#list-note")).to_be_hidden()


async def test_orders_and_filters_steer_the_list(page, live_app, db, config):
    url, app = live_app
    await insert_customers(db, 50)
    job = await import_file(app, write_csv(config.import_dir / "few.csv",
                                           [HEADER, row(1, "IMP-1", "Imported"), row(2, "IMP-2", "Imported")]))
    await db.all("UPDATE customers SET updated_at = now() + interval '1 hour', updated_manually_at = now(), "
                 "first_name = 'Touched' WHERE customer_id = 'C00000007'")
    await page.goto(url)
    await expect(page.locator(f'{ROWS}[data-index="0"]')).to_contain_text("First1 ")

    await page.get_by_label("Order").select_option("updated")
    await expect(page.locator(f'{ROWS}[data-index="0"]')).to_contain_text("Touched")
    await page.get_by_label("Order").select_option("newest")
    await expect(page.locator(f'{ROWS}[data-index="0"]')).to_contain_text("Imported")

    await page.get_by_label("Show").select_option("edited")
    await expect(page.locator(ROWS)).to_have_count(1)
    await expect(page.locator(ROWS).first).to_contain_text("Touched")

    # From the history: the customers one import wrote.
    await page.get_by_label("Show").select_option("")
    await page.get_by_text("Import history").click()
    await page.get_by_role("button", name="Its customers").click()
    await expect(page.get_by_label("Show")).to_have_value(f"job:{job['id']}")
    await expect(page.locator(ROWS)).to_have_count(2)
    await expect(page.locator(ROWS).first).to_contain_text("Imported")


async def test_search_finds_a_customer_by_surname_first_and_by_city(page, live_app, db):
    url, _ = live_app
    await insert_customers(db, 3_000)  # City 0 to City 30, all in Norway
    await db.all("INSERT INTO customers (customer_id, first_name, last_name, city, country) VALUES "
                 "('HC-1', 'Heather', 'Callahan', 'Port Louis', 'Mauritius'), "
                 "('HS-2', 'Heather', 'Stone', 'Oslo', 'Norway')")
    await page.goto(url)
    await expect(page.locator("#list-total")).to_have_text("3,002 customers in all")
    search = page.get_by_role("searchbox", name="Search by name, email, company, city, country or Customer Id")

    for query in ("Callahan Heather", "port louis", "Mauritius heather"):
        await search.fill(query)
        await expect(page.locator(ROWS)).to_have_count(1)
        await expect(page.locator(ROWS).first).to_contain_text("Heather Callahan")
    await search.fill("Heather")  # both: every word must match, the one word matches both
    await expect(page.locator(ROWS)).to_have_count(2)
    await search.fill("heather oslo")
    await expect(page.locator(ROWS)).to_have_count(1)
    await expect(page.locator(ROWS).first).to_contain_text("Heather Stone")
