"""The customer list: windowed scrolling, editing by hand, and hostile text shown as text."""
from __future__ import annotations

import pytest
from playwright.async_api import expect

from server import customers
from tests.importing import HEADER, import_file, row, write_csv

from .conftest import PHONE, screenshot
from .pages import WATCH_ROWS, insert_customers

pytestmark = pytest.mark.browser

HOSTILE = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(2)</script>"
ROWS = "#list-spacer .list-row"


async def loaded(page) -> tuple[int, bool]:
    state = await page.evaluate("({...document.getElementById('list-viewport').dataset})")
    return int(state.get("loaded", 0)), state.get("done") == "true"


async def scroll_to_the_end(page, *, pages: int) -> None:
    """Jump to the list's bottom until it has loaded its last page (at most `pages` jumps),
    each time waiting until the jump brought more rows."""
    viewport = page.locator("#list-viewport")
    for _ in range(pages):
        count, done = await loaded(page)
        if done:
            return
        await viewport.evaluate("v => { v.scrollTop = v.scrollHeight; }")
        await page.wait_for_function(
            f"(() => {{ const d = document.getElementById('list-viewport').dataset;"
            f" return Number(d.loaded) > {count} || d.done === 'true'; }})()", polling="raf")


async def test_scrolling_100000_customers_keeps_few_rows_and_scrolling_back_asks_nothing(page, live_app, db):
    url, _ = live_app
    await insert_customers(db, 100_000)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/customers" in r.url else None)
    await page.goto(url)
    await expect(page.locator(ROWS).first).to_contain_text("First1")
    await page.evaluate(WATCH_ROWS)
    viewport = page.locator("#list-viewport")

    # Down to the end: each jump to the bottom brings the next page.
    await scroll_to_the_end(page, pages=2000)
    assert await loaded(page) == (100_000, True)
    await viewport.evaluate("v => { v.scrollTop = v.scrollHeight; }")
    last_row = page.locator(f'{ROWS}[data-index="99999"]')
    await expect(last_row).to_contain_text("First100000")
    await expect(last_row).to_be_in_viewport()
    paging_requests = len(requests)
    assert paging_requests >= 2

    # And back up, a screen at a time: everything comes from the page's cache.
    await viewport.evaluate("""async v => {
      while (v.scrollTop > 0) {
        v.scrollTop = Math.max(0, v.scrollTop - v.clientHeight * 40);
        await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
      }
    }""")
    first_row = page.locator(f'{ROWS}[data-index="0"]')
    await expect(first_row).to_contain_text("First1 ")
    await expect(first_row).to_be_in_viewport()
    max_rows = await page.evaluate("window.__maxRows")
    assert 0 < max_rows < 100, max_rows
    assert await page.locator(ROWS).count() < 100
    assert len(requests) == paging_requests, requests[paging_requests:]
    await screenshot(page, "list-desktop")
    await page.set_viewport_size(PHONE)
    await screenshot(page, "list-phone")


async def test_a_hand_edit_is_saved_with_if_match_and_marked(page, live_app, db):
    url, _ = live_app
    await insert_customers(db, 30)
    await page.goto(url)
    await page.get_by_role("button", name="Edit First3 Last3", exact=True).click()
    dialog = page.get_by_role("dialog")
    await expect(dialog.get_by_label("First name")).to_have_value("First3")
    await screenshot(page, "edit-dialog")
    await dialog.get_by_label("First name").fill("Edited By Hand")
    await dialog.get_by_role("button", name="Save").click()
    await expect(dialog).to_be_hidden()
    edited = page.locator(ROWS).filter(has_text="Edited By Hand")
    await expect(edited.locator(".mark-manual")).to_have_text("edited")
    first, manual = await db.one("SELECT first_name, updated_manually_at FROM customers WHERE customer_id = 'C00000003'")
    assert first == "Edited By Hand" and manual is not None
    # Only the edited row carries the mark.
    await expect(page.locator(f"{ROWS} .mark-manual")).to_have_count(1)


async def test_a_conflicting_edit_is_reported_and_the_row_reloaded(page, live_app, db):
    url, _ = live_app
    await insert_customers(db, 5)
    await page.goto(url)
    await page.get_by_role("button", name="Edit First2 Last2", exact=True).click()
    dialog = page.get_by_role("dialog")
    await expect(dialog.get_by_label("First name")).to_have_value("First2")
    # Someone else changes the row after the form was opened.
    await db.all("UPDATE customers SET first_name = 'Changed Elsewhere', updated_at = clock_timestamp() + interval '1 second', "
                 "updated_manually_at = now() WHERE customer_id = 'C00000002'")
    await dialog.get_by_label("Last name").fill("Mine")
    await dialog.get_by_role("button", name="Save").click()
    await expect(page.locator("#form-message")).to_contain_text("Someone else changed this customer")
    await expect(dialog.get_by_label("First name")).to_have_value("Changed Elsewhere")
    await expect(page.locator(ROWS).filter(has_text="Changed Elsewhere")).to_have_count(1)
    assert await db.value("SELECT last_name FROM customers WHERE customer_id = 'C00000002'") == "Last2"


async def test_create_shows_422_next_to_the_field_then_delete_asks_first(page, live_app, db):
    url, _ = live_app
    await insert_customers(db, 3)
    await page.goto(url)
    await page.get_by_role("button", name="New customer").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Customer Id").fill("X" * 65)  # the contract allows 64: the input takes no more
    await expect(dialog.get_by_label("Customer Id")).to_have_value("X" * 64)
    await dialog.get_by_label("Customer Id").fill("   ")  # blank: the server names the field
    await dialog.get_by_label("First name").fill("Newton")
    await dialog.get_by_role("button", name="Save").click()
    await expect(page.locator("#e-customer_id")).not_to_be_empty()
    await expect(dialog.get_by_label("Customer Id")).to_have_attribute("aria-invalid", "true")
    await screenshot(page, "create-422")

    await dialog.get_by_label("Customer Id").fill("NEW-1")
    await dialog.get_by_role("button", name="Save").click()
    await expect(dialog).to_be_hidden()
    new_row = page.locator(ROWS).filter(has_text="Newton")
    await expect(new_row).to_have_count(1)
    assert await db.value("SELECT updated_manually_at IS NOT NULL FROM customers WHERE customer_id = 'NEW-1'")

    await new_row.get_by_role("button", name="Edit Newton").click()
    page.watch.accept_dialogs = False  # the first confirm is dismissed: nothing happens
    await dialog.get_by_role("button", name="Delete").click()
    assert page.watch.dialogs and page.watch.dialogs[-1].startswith("confirm")
    assert await db.value("SELECT count(*) FROM customers WHERE customer_id = 'NEW-1'") == 1
    page.watch.accept_dialogs = True
    await dialog.get_by_role("button", name="Delete").click()
    await expect(dialog).to_be_hidden()
    await expect(new_row).to_have_count(0)
    assert await db.value("SELECT count(*) FROM customers WHERE customer_id = 'NEW-1'") == 0


async def test_hostile_text_is_shown_as_text_in_the_list_and_the_recent_rows(page, live_app, db, tmp_path):
    url, app = live_app
    path = write_csv(tmp_path / "hostile.csv", [
        # The hostile name's address would be no email address (a reject), so it gets a plain one.
        HEADER, row(1, "H1", HOSTILE, company=SCRIPT).replace(f"{HOSTILE.lower()}@", "h1@"),
        row(2, "H2", "Plain", company=HOSTILE)])
    job = await import_file(app, path)
    assert job["status"] == "completed", job
    await page.goto(url)
    await expect(page.locator(ROWS).first).to_be_visible()
    await expect(page.locator(f"{ROWS} .name", has_text=HOSTILE)).to_have_count(1)
    await expect(page.locator(f"{ROWS} .c-company", has_text=SCRIPT)).to_have_count(1)
    await expect(page.locator("#recent-body tr")).to_have_count(2)
    cells = await page.locator("#recent-body td").all_text_contents()
    assert HOSTILE in cells and SCRIPT in cells and f"{HOSTILE} Lee" in cells, cells
    assert await page.locator("main img, main script").count() == 0
    await page.wait_for_timeout(300)  # an onerror would fire by now
    assert page.watch.dialogs == []


async def test_search_is_debounced_and_shows_only_matches(page, live_app, db):
    url, _ = live_app
    await insert_customers(db, 100)
    searches: list[str] = []
    page.on("request", lambda r: searches.append(r.url) if "/customers?" in r.url and "q=" in r.url else None)
    await page.goto(url)
    await expect(page.locator(ROWS).first).to_contain_text("First1")
    search = page.get_by_role("searchbox", name="Search by name, email, company, city, country or Customer Id")
    await search.press_sequentially("first7", delay=40)
    await expect(page.locator(ROWS)).to_have_count(11)  # First7 and First70..First79
    for name in await page.locator(f"{ROWS} .name").all_text_contents():
        assert name.startswith("First7"), name
    assert len(searches) == 1 and "q=first7" in searches[0], searches
    await page.get_by_role("searchbox").fill("no such customer")
    await expect(page.locator("#list-message")).to_contain_text("No customer matches")
    await expect(page.locator(ROWS)).to_have_count(0)


async def test_a_search_stopped_at_its_work_budget_says_more_may_match(page, live_app, db, monkeypatch):
    """Over millions of customers a common two-letter search stops at its work budget; a
    budget of 40 rows over 300 customers does the same here. The words above the list
    say that what they count is a floor, and scrolling still brings every match."""
    monkeypatch.setattr(customers, "SEARCH_WALK_BUDGET", 40)
    monkeypatch.setattr(customers, "SEARCH_CANDIDATE_BUDGET", 10)
    url, _ = live_app
    await insert_customers(db, 300)
    await page.goto(url)
    await expect(page.locator(ROWS).first).to_contain_text("First1")
    await page.get_by_role("searchbox").fill("first")
    total = page.locator("#list-total")
    await expect(total).to_contain_text("At least")
    await expect(total).to_contain_text("more may follow as you scroll")
    await expect(page.locator(ROWS).first).to_contain_text("First1")
    # The list asks on from where each budget stopped, to the last customer.
    viewport = page.locator("#list-viewport")
    await scroll_to_the_end(page, pages=100)
    assert await loaded(page) == (300, True)
    await viewport.evaluate("v => { v.scrollTop = v.scrollHeight; }")
    await expect(page.locator(f'{ROWS}[data-index="299"]')).to_contain_text("First300")
