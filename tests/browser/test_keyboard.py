"""Every control has a name and can be reached and used from the keyboard."""
from __future__ import annotations

import pytest
from playwright.async_api import expect

from .pages import insert_customers

pytestmark = pytest.mark.browser

UNNAMED_CONTROLS = """() => [...document.querySelectorAll('button, input, textarea, select, a[href], [tabindex]:not([tabindex="-1"])')]
  .filter(el => {
    const labels = el.labels ? [...el.labels].map(l => l.textContent).join('') : '';
    const name = el.getAttribute('aria-label') || labels || el.textContent || '';
    const labelledBy = el.getAttribute('aria-labelledby');
    return !name.trim() && !(labelledBy && document.getElementById(labelledBy));
  })
  .map(el => el.outerHTML.slice(0, 120))"""

FOCUSED = """() => { const el = document.activeElement;
  return el.id || el.getAttribute('aria-label') || el.textContent.trim(); }"""


async def test_every_control_is_named_and_reachable_by_tab(page, live_app, db):
    url, _ = live_app
    await insert_customers(db, 5)
    await page.goto(url)
    await expect(page.locator("#list-spacer .list-row").first).to_contain_text("First1")
    assert await page.evaluate(UNNAMED_CONTROLS) == []

    seen = []
    for _ in range(30):
        await page.keyboard.press("Tab")
        seen.append(await page.evaluate(FOCUSED))
    for wanted in ("file-input", "search-input", "new-customer-button", "list-viewport", "Edit First1 Last1"):
        assert wanted in seen, (wanted, seen)

    # Enter opens the form from a row, the fields take typing, Escape closes it.
    await page.get_by_role("button", name="Edit First1 Last1", exact=True).focus()
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_label("First name")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
