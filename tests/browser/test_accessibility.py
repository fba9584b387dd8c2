"""Keyboard and screen readers: an axe audit of the page, its dialog and the sign-in page;
focus rings that show; Tab that follows the rows on screen; keyboard-only create, edit and import."""
from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import expect

from server.generate import generate

from .axe import violations
from .conftest import screenshot
from .pages import insert_customers, wait_for_status

pytestmark = pytest.mark.browser

ROWS = "#list-spacer .list-row"
FOCUSED = "() => { const el = document.activeElement; return el.id || el.getAttribute('aria-label') || el.textContent.trim(); }"


async def test_axe_finds_nothing_serious_on_the_page_the_dialog_and_the_sign_in_page(page, live_app, db, config):
    url, app = live_app
    await insert_customers(db, 30)
    path = config.import_dir / "few.csv"
    generate(path, 200)
    await page.goto(url)
    await expect(page.locator(ROWS).first).to_contain_text("First1")
    assert await violations(page) == []

    # With a finished job, its outcome and the open history.
    from tests.browser.test_job_result import start_job
    await start_job(app, path)
    await wait_for_status(page, ("completed",))
    await page.get_by_text("Import history").click()
    await expect(page.locator("#history-body tr")).to_have_count(1)
    assert await violations(page) == []

    await page.get_by_role("button", name="New customer").click()
    await page.get_by_role("dialog").get_by_role("button", name="Save").click()  # with its errors shown
    await expect(page.locator("#e-customer_id")).not_to_be_empty()
    assert await violations(page, "#customer-dialog") == []
    await page.keyboard.press("Escape")

    context = await page.context.browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    signin = await context.new_page()
    await signin.goto(f"{url}/login")
    assert await violations(signin) == []
    await context.close()


async def test_focus_rings_show_unclipped_with_enough_contrast(page, live_app, db):
    url, _ = live_app
    await insert_customers(db, 5)
    await page.goto(url)
    edit = page.get_by_role("button", name="Edit First1 Last1", exact=True)
    await page.get_by_role("searchbox").focus()
    for _ in range(12):
        await page.keyboard.press("Tab")
        if await edit.evaluate("b => b === document.activeElement"):
            break
    await expect(edit).to_be_focused()
    ring = await edit.evaluate("""b => { const s = getComputedStyle(b);
      return {style: s.outlineStyle, width: parseFloat(s.outlineWidth), color: s.outlineColor, offset: parseFloat(s.outlineOffset)}; }""")
    assert ring["style"] == "solid" and ring["width"] >= 2
    r, g, b = (int(v) for v in ring["color"][ring["color"].index("(") + 1:-1].split(",")[:3])

    def luminance(c):
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    lum = 0.2126 * luminance(r) + 0.7152 * luminance(g) + 0.0722 * luminance(b)
    assert (1.05) / (lum + 0.05) >= 3, ring  # against the white row
    # The ring lies inside what the list shows (drawn inward there), so nothing clips it.
    box = await edit.bounding_box()
    clip = await page.locator("#list-viewport").bounding_box()
    outer = ring["width"] + ring["offset"]
    assert box["x"] - max(outer, 0) >= clip["x"] and box["x"] + box["width"] + max(outer, 0) <= clip["x"] + clip["width"]
    await screenshot(page, "focus-ring-desktop")


async def test_tab_follows_the_rows_on_screen_after_scrolling(page, live_app, db):
    url, _ = live_app
    await insert_customers(db, 400)
    await page.goto(url)
    viewport = page.locator("#list-viewport")
    await expect(page.locator(ROWS).first).to_contain_text("First1")
    await viewport.evaluate("v => { v.scrollTop = 150 * 40; }")
    await expect(page.locator(f'{ROWS}[data-index="150"]')).to_be_visible()
    await viewport.evaluate("v => { v.scrollTop = 0; }")
    await expect(page.locator(f'{ROWS}[data-index="0"]')).to_be_visible()
    # In DOM order, the rows are in their order on screen.
    indexes = await page.evaluate("[...document.querySelectorAll('#list-spacer .list-row')].map(r => Number(r.dataset.index))")
    assert indexes == sorted(indexes)
    await viewport.focus()
    await page.keyboard.press("Tab")
    assert await page.evaluate(FOCUSED) == "Edit First1 Last1"
    await page.keyboard.press("Tab")
    assert await page.evaluate(FOCUSED) == "Edit First2 Last2"


async def test_keyboard_only_create_edit_and_import(page, live_app, db, config, tmp_path):
    url, _ = live_app
    # Playwright turns file-chooser interception on by a message it does not wait for; asked
    # for only just before the key press (expect_file_chooser), it can arrive after the press,
    # and the chooser then opens unseen. Asked for here, it is on long before.
    choosers: asyncio.Queue = asyncio.Queue()
    page.on("filechooser", choosers.put_nowait)
    await insert_customers(db, 3)
    await page.goto(url)
    await expect(page.locator(ROWS).first).to_contain_text("First1")

    # Create: to the button by Tab, type, Enter saves; focus lands on the new row.
    await page.get_by_role("searchbox").focus()
    await page.keyboard.press("Tab")
    assert await page.evaluate(FOCUSED) == "new-customer-button"
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("dialog").get_by_label("Customer Id")).to_be_focused()
    await page.keyboard.type("KB-1")
    await page.keyboard.press("Tab")
    await page.keyboard.type("Kim")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("button", name="Edit Kim")).to_be_focused()

    # Edit: Enter on the focused row's button, change, Enter; focus comes back to it.
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("dialog").get_by_label("First name")).to_be_focused()
    await page.keyboard.press("Tab")
    await page.keyboard.type("Keyes")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("button", name="Edit Kim Keyes")).to_be_focused()
    assert await db.value("SELECT last_name FROM customers WHERE customer_id = 'KB-1'") == "Keyes"

    # Import: the file input by keyboard, Start by Enter; focus goes to the job, the end is announced.
    path = tmp_path / "keys.csv"
    generate(path, 100)
    await page.locator("#file-input").focus()
    await expect(page.locator("#file-input")).to_be_focused()
    await page.keyboard.press("Space")
    chooser = await asyncio.wait_for(choosers.get(), timeout=15)
    await chooser.set_files(str(path))
    await page.keyboard.press("Tab")
    assert await page.evaluate(FOCUSED) == "preview-button"  # optional: Start imports as detected
    await page.keyboard.press("Tab")
    assert await page.evaluate(FOCUSED) == "start-button"
    await page.keyboard.press("Enter")
    await expect(page.locator("#job-title")).to_be_focused()
    await wait_for_status(page, ("completed",))
    await expect(page.locator("#announcer")).to_have_text(
        "Import of keys.csv completed: 100 of 100 rows imported")
