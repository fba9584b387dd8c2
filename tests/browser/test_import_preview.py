"""The import panel's preview step: choose a file, see what the import would do, change a field, import."""
from __future__ import annotations

import pytest
from playwright.async_api import expect

from .pages import wait_for_status

pytestmark = pytest.mark.browser


async def test_a_mapping_changed_in_the_preview_is_what_the_import_uses(page, live_app, db, tmp_path):
    url, _ = live_app
    path = tmp_path / "excel export.csv"
    lines = ["sep=;", "Customer Id;FIRSNAME;City;Subscription Date"]
    lines += [f"P{i};Jürgen{i};Köln;{i:02d}-04-2021" for i in range(1, 26)] + [";Nobody;Rome;01-01-2021"]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))

    await page.goto(url)
    await expect(page.locator("#connection")).to_have_text("Live")
    await page.get_by_label("CSV file", exact=True).set_input_files(str(path))
    await page.get_by_role("button", name="Preview").click()

    preview = page.locator("#preview")
    await expect(preview).to_be_visible()
    await expect(page.locator("#preview-settings")).to_contain_text("windows-1252")
    await expect(page.locator("#preview-settings")).to_contain_text("DD-MM-YYYY")
    first_name = page.get_by_label("Field for column FIRSNAME")
    await expect(first_name).to_have_value("first_name")  # the suggestion, for the person to confirm
    await expect(page.get_by_label("Field for column City")).to_have_value("city")
    rows = page.locator("#preview-rows tr")
    await expect(rows).to_have_count(20)
    await expect(rows.first).to_contain_text("Jürgen1")
    await expect(rows.first).to_contain_text("2021-04-01")

    # The person changes their mind: the city is not to be imported.
    await page.get_by_label("Field for column City").select_option("")
    await page.get_by_role("button", name="Start import").click()
    await wait_for_status(page, ("completed",))

    job = await db.value("SELECT import_job_json(j) FROM import_jobs j ORDER BY id DESC LIMIT 1")
    assert (job["inserted"], job["rejected"]) == (25, 1), job
    assert job["options"]["mapping"] == {"FIRSNAME": "first_name", "City": None}
    stored = await db.all("SELECT first_name, city, subscription_date::text FROM customers "
                          "WHERE customer_id = 'P1'")
    assert stored == [("Jürgen1", None, "2021-04-01")]
    assert await db.value("SELECT count(*) FROM uploads") == 0  # the preview's upload became the job's file
