"""A phone (390x844): the list one tap away at most, no scroll inside a scroll, 44 px targets;
screenshots of the page at both sizes."""
from __future__ import annotations

import pytest
from playwright.async_api import expect

from .axe import violations
from .conftest import DESKTOP, PHONE, screenshot
from .pages import insert_customers

pytestmark = pytest.mark.browser

ROWS = "#list-spacer .list-row"
SMALL_TARGETS = """() => [...document.querySelectorAll('button, select, input, summary, a[href]')]
  .filter(el => el.offsetParent !== null && !el.closest('.list-header'))
  .map(el => { const r = el.getBoundingClientRect();
    return {what: el.id || el.getAttribute('aria-label') || el.textContent.trim().slice(0, 30), w: r.width, h: r.height}; })
  .filter(t => t.w < 44 || t.h < 44)"""


async def test_on_a_phone_the_list_shows_at_once_without_a_scroll_trap(page, live_app, db):
    url, _ = live_app
    await insert_customers(db, 300)
    await page.set_viewport_size(PHONE)
    await page.goto(url)
    first = page.locator(f'{ROWS}[data-index="0"]')
    await expect(first).to_contain_text("First1")
    await expect(first).to_be_in_viewport()
    # The page itself does not scroll: the list is the one scrolling area.
    sizes = await page.evaluate("({page: document.scrollingElement.scrollHeight, window: innerHeight})")
    assert sizes["page"] <= sizes["window"], sizes
    viewport = await page.locator("#list-viewport").bounding_box()
    assert viewport["y"] + viewport["height"] <= PHONE["height"] and viewport["height"] >= 300
    assert await page.evaluate(SMALL_TARGETS) == []
    assert await violations(page) == []
    await screenshot(page, "customers-phone")

    # The import panel is the other tab.
    await page.get_by_role("tab", name="Import").click()
    await expect(page.get_by_role("heading", name="Import a CSV file")).to_be_visible()
    await expect(page.locator("#customers-panel")).to_be_hidden()
    assert await page.evaluate(SMALL_TARGETS) == []
    await screenshot(page, "import-phone", full_page=True)
    await page.get_by_role("tab", name="Customers").click()
    await expect(first).to_be_visible()


async def test_on_a_desktop_both_panels_show_side_by_side(page, live_app, db):
    url, _ = live_app
    await insert_customers(db, 300)
    await page.set_viewport_size(DESKTOP)
    await page.goto(url)
    await expect(page.locator(f'{ROWS}[data-index="0"]')).to_be_in_viewport()
    await expect(page.get_by_role("heading", name="Import a CSV file")).to_be_in_viewport()
    await expect(page.get_by_role("tab", name="Import")).to_be_hidden()
    await screenshot(page, "page-desktop")
