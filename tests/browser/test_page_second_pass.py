"""The page's second pass (issue 27), each at a laptop's size (1280x800) and a phone's (390x844):
a start that cannot lose a column, tables that stay in their panels, counts
that match what is shown, and the smaller fixes around them. Screenshots go
to test-artifacts/screenshots/ (git-ignored), named by test and size."""
from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from server.importer import jobs
from server.keys import pool_key, runner_key
from tests.importing import HEADER

from .axe import violations
from .conftest import DESKTOP, PHONE, screenshot
from .pages import insert_customers, wait_for_status

pytestmark = pytest.mark.browser

ROWS = "#list-spacer .list-row"
NO_SIDEWAYS_SCROLL = "document.scrollingElement.scrollWidth <= innerWidth"
# Every table's box ends inside its panel (a wider table scrolls inside its own box).
TABLES_OUTSIDE_PANELS = """() => [...document.querySelectorAll('table')]
  .filter(t => t.offsetParent !== null)
  .map(t => { const box = (t.closest('.table-scroll, .table-wrap') || t).getBoundingClientRect();
              const panel = t.closest('.panel').getBoundingClientRect();
              return {table: t.className, right: box.right, panel: panel.right}; })
  .filter(t => t.right > t.panel + 0.5)"""


@pytest.fixture(params=["desktop", "phone"])
async def size(request, page) -> str:
    await page.set_viewport_size(DESKTOP if request.param == "desktop" else PHONE)
    return request.param


async def test_start_without_preview_keeps_a_misspelled_column_or_stops_first(page, live_app, db, tmp_path, size):
    url, _ = live_app
    path = tmp_path / "misspelled.csv"
    path.write_text("Customer Id,FIRSNAME,Last Name,Favourite Colour\n"
                    + "".join(f"M{i},Heather{i},Callahan,blue\n" for i in range(1, 11)))
    await page.goto(url)
    await expect(page.locator("#connection")).to_have_text("Live")

    # No customers yet: the list points to Import, and a phone opens on the Import tab.
    if size == "phone":
        await expect(page.get_by_role("tab", name="Import")).to_have_attribute("aria-selected", "true")
        await expect(page.get_by_label("CSV file", exact=True)).to_be_visible()
        await page.get_by_role("tab", name="Customers").click()
    await expect(page.locator("#list-empty")).to_contain_text("No customers yet. Import a CSV file")
    await page.get_by_role("button", name="Go to Import").click()
    await expect(page.get_by_label("CSV file", exact=True)).to_be_focused()
    await screenshot(page, f"empty-list-points-to-import-{size}")

    # Start without Preview: the misspelled column stops it, with its suggestion chosen.
    await page.get_by_label("CSV file", exact=True).set_input_files(str(path))
    await page.get_by_role("button", name="Start import").click()
    await expect(page.locator("#upload-message")).to_contain_text(
        "Not started: column FIRSNAME matches no field (suggested: First Name, Last Name)")
    await expect(page.locator("#preview")).to_be_visible()
    await expect(page.get_by_label("Field for column FIRSNAME")).to_have_value("first_name")
    # A column that matches nothing and resembles nothing is ignored, marked amber.
    colour = page.locator("#preview-columns tr", has=page.get_by_label("Field for column Favourite Colour"))
    await expect(colour).to_have_attribute("data-ignored", "true")
    assert await db.value("SELECT count(*) FROM import_jobs") == 0
    assert await page.evaluate(NO_SIDEWAYS_SCROLL)
    await screenshot(page, f"start-stopped-with-suggestion-{size}", full_page=True)

    # Started again, it imports what the preview shows: the first names are kept.
    await page.get_by_role("button", name="Start import").click()
    await wait_for_status(page, ("completed",))
    names = await db.all("SELECT first_name FROM customers ORDER BY id")
    assert [name for (name,) in names] == [f"Heather{i}" for i in range(1, 11)]
    # The ignored column keeps the end amber, never green.
    await expect(page.locator("#job-outcome")).to_have_attribute("data-tone", "warning")
    await expect(page.locator("#job-status")).to_have_attribute("data-problems", "true")
    await expect(page.locator("#job-outcome-text")).to_have_text(
        "Completed with problems: 10 of 10 rows imported (1 column ignored)")
    await expect(page.locator("#job-ignored")).to_have_text("Ignored column (not customer fields): Favourite Colour.")
    # A short job's time to the tenth of a second; no control that no longer applies.
    await expect(page.locator("#job-duration")).to_have_text(re_took())
    for control in ("#pause-button", "#resume-button", "#cancel-button"):
        await expect(page.locator(control)).to_be_hidden()
    assert await page.evaluate(NO_SIDEWAYS_SCROLL)
    await screenshot(page, f"start-after-confirming-{size}", full_page=True)


def re_took():
    return re.compile(r"^Took \d+\.\d s, from .+\.$")


async def test_tables_stay_inside_their_panels_and_a_phone_never_scrolls_sideways(page, live_app, tmp_path):
    """One preview and one job, looked at in both sizes (the page resized, as a person turning a tablet)."""
    url, app = live_app
    long = "x" * 400
    path = tmp_path / "wide.csv"
    lines = [HEADER] + [f"{n},W{n},Jürgen{n},Lee,Company {long[:60]},Köln,Germany,1,,397.884.0519x{n},2021-01-01,"
                        f"https://example.com/{long[:80]},{long}" for n in range(1, 6)]
    lines.append(f"6,W6,too,few,fields {long}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    await page.goto(url)
    await page.get_by_label("CSV file", exact=True).set_input_files(str(path))
    await page.get_by_role("button", name="Preview").click()
    await expect(page.locator("#preview")).to_be_visible()

    # The rejected row: its reason beside its line number, the raw line on a full-width row of its own.
    rejected = page.locator("#preview-rows tr.rejected").first
    await expect(rejected.locator("td")).to_have_count(2)
    await expect(rejected.locator("td").nth(1)).to_have_attribute("colspan", "5")
    # Emails that are phone numbers are rejected too (the last row is the short one).
    raw = page.locator("#preview-rows tr.raw td[colspan='5']")
    await expect(raw).to_have_count(6)
    await expect(raw.last).to_contain_text("6,W6,too,few,fields")
    # The value check: how many sampled values look like an email, and a warning.
    email = page.locator("#preview-columns tr", has=page.get_by_label("Field for column Email"))
    await expect(email.locator(".check")).to_contain_text("0 of 5 look like emails")
    await expect(email.locator(".check-warning")).to_have_text(
        "most values of 'Email' do not look like email addresses: 0 of the 5 sampled do")
    await expect(page.locator("#preview-examples")).to_have_text(
        "Letters beyond ASCII, as they will be stored: Jürgen1, Köln, Jürgen2, Jürgen3, Jürgen4")
    for size, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        await page.set_viewport_size(viewport)
        await expect(page.locator("#preview")).to_be_visible()  # on a phone: the Import tab, first while empty
        assert await page.evaluate(TABLES_OUTSIDE_PANELS) == [], size
        assert await page.evaluate(NO_SIDEWAYS_SCROLL), size
        assert await violations(page) == [], size
        await screenshot(page, f"preview-wide-file-{size}", full_page=True)

    # The job card and the history: the same amber for a completed job with rejects, counters in view.
    job = await jobs.create(app[pool_key], filename="rejects.csv", path=path, bytes_total=path.stat().st_size)
    app[runner_key].wake()
    await wait_for_status(page, ("completed",))
    await expect(page.locator("#job-status")).to_have_attribute("data-problems", "true")
    toggle = page.get_by_role("button", name="Import history")
    await expect(toggle).to_have_attribute("aria-expanded", "false")
    arrow = await toggle.evaluate("b => getComputedStyle(b, '::before').content")
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    assert arrow != await toggle.evaluate("b => getComputedStyle(b, '::before').content")  # the arrow turns
    row = page.locator(f"#history-body tr[data-job='{job['id']}']")
    badge = row.locator(".badge")
    await expect(badge).to_have_text("completed")
    await expect(badge).to_have_attribute("data-problems", "true")
    colours = await page.evaluate("""() => [document.getElementById('job-status'),
        document.querySelector('#history-body .badge')].map(b => getComputedStyle(b).backgroundColor)""")
    assert colours[0] == colours[1], colours
    await expect(row.locator("td").nth(6)).to_have_text(re_number_of_seconds())
    # One date format: the person's locale, the same in the card and the history.
    started = await page.evaluate("""(iso) => new Intl.DateTimeFormat(undefined,
        {dateStyle: 'medium', timeStyle: 'short'}).format(new Date(iso))""",
                                  (await jobs.get(app[pool_key], job["id"]))["started_at"])
    await expect(row.locator("td").nth(5)).to_have_text(started)
    await expect(page.locator("#job-duration")).to_contain_text(f"from {started}.")
    for size, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        await page.set_viewport_size(viewport)
        wrap = await page.locator("#history .table-wrap").bounding_box()
        for cell in (2, 3):  # Imported, Rejected
            box = await row.locator("td").nth(cell).bounding_box()
            assert box["x"] + box["width"] <= wrap["x"] + wrap["width"] + 0.5, (size, cell, box, wrap)
        assert await page.evaluate(TABLES_OUTSIDE_PANELS) == [], size
        assert await page.evaluate(NO_SIDEWAYS_SCROLL), size
        assert await violations(page) == [], size
        await screenshot(page, f"history-open-{size}", full_page=True)


def re_number_of_seconds():
    return re.compile(r"^\d+\.\d s$")


async def test_counts_search_and_rows_match_what_is_shown(page, live_app, db):
    """One list, looked at in both sizes (the page resized)."""
    url, _ = live_app
    await insert_customers(db, 3_000)
    await db.all("""UPDATE customers SET first_name = 'Heather', last_name = 'Callahan',
                     customer_id = 'EB54EF11' || id, updated_manually_at = now()
                    WHERE id IN (SELECT id FROM customers ORDER BY id LIMIT 2)""")
    await page.goto(url)
    total = page.locator("#list-total")
    await expect(total).to_have_text("3,000 customers in all")
    search = page.get_by_role("searchbox")
    for viewport in (PHONE, DESKTOP):
        await page.set_viewport_size(viewport)
        # The placeholder fits its box.
        assert await search.evaluate("""input => {
          const style = getComputedStyle(input);
          const context = document.createElement('canvas').getContext('2d');
          context.font = `${style.fontSize} ${style.fontFamily}`;
          const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
          return context.measureText(input.placeholder).width <= room;
        }"""), viewport

    # Counts follow what is shown: a search, the edited-by-hand filter, and back.
    await search.fill("heather")
    await expect(total).to_have_text("2 matches")
    await search.fill("eb54ef11")  # a Customer Id in another case
    await expect(total).to_have_text("2 matches")
    await expect(page.locator(ROWS).first).to_contain_text("Heather Callahan")
    await search.fill("first")
    await expect(total).to_have_text("More than 1,000 matches")
    await search.fill("")
    await expect(total).to_have_text("3,000 customers in all")
    await page.get_by_label("Show").select_option("edited")
    await expect(total).to_have_text("2 matches")

    dialog = page.get_by_role("dialog")
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.method) if "/customers/" in request.url else None)
    for index, (size, viewport) in enumerate((("desktop", DESKTOP), ("phone", PHONE))):
        await page.set_viewport_size(viewport)
        await expect(total).to_be_visible()
        # The edited mark never cuts the name, and both stay inside the row; the desktop list shows the Customer Id.
        row = page.locator(f'{ROWS}[data-index="{index}"]')
        await expect(row.locator(".mark-manual")).to_be_visible()
        assert await row.evaluate("""row => {
          const name = row.querySelector('.name'), mark = row.querySelector('.mark-manual');
          const [n, m, r] = [name, mark, row].map(e => e.getBoundingClientRect());
          return name.scrollWidth <= name.clientWidth && name.textContent === 'Heather Callahan'
            && m.top >= n.bottom - 1 && n.top >= r.top && m.bottom <= r.bottom;
        }"""), size
        customer_id = f"EB54EF11{index + 1}"
        if size == "desktop":
            await expect(page.get_by_role("columnheader", name="Customer Id")).to_be_visible()
            await expect(row.locator(".c-cid")).to_have_text(customer_id)
        assert await page.evaluate(NO_SIDEWAYS_SCROLL), size
        await screenshot(page, f"list-edited-filter-{size}")

        # A click on the row opens the customer; an email that is none is refused at its field.
        await row.locator(".c-name").click()
        await expect(dialog.get_by_label("Customer Id")).to_have_value(customer_id)
        email = dialog.get_by_label("Email")
        await email.fill("397.884.0519x718")
        await dialog.get_by_label("City").focus()  # leaving the field checks it
        await expect(page.locator("#e-email")).to_contain_text("This is not an email address")
        await expect(email).to_have_attribute("aria-invalid", "true")
        await dialog.get_by_role("button", name="Save").click()
        await expect(page.locator("#form-message")).to_have_text("Please correct the marked fields.")
        assert sent.count("PATCH") == index  # nothing sent for this one
        await screenshot(page, f"dialog-email-refused-{size}")

        # A good one is saved, and the page says so where it can be seen.
        await email.fill("heather@example.com")
        await dialog.get_by_role("button", name="Save").click()
        await expect(dialog).to_be_hidden()
        await expect(page.locator("#list-message")).to_have_text(f"Saved Heather Callahan ({customer_id}).")
        await expect(page.locator("#list-message")).to_be_visible()
        assert sent.count("PATCH") == index + 1
        assert await violations(page) == [], size

    # The server's own field errors still show at their field: a Customer Id taken.
    await page.get_by_role("button", name="New customer").click()
    await dialog.get_by_label("Customer Id").fill("EB54EF111")
    await dialog.get_by_role("button", name="Save").click()
    await expect(page.locator("#e-customer_id")).to_have_text(
        "Another customer already has this Customer Id; choose another one.")
