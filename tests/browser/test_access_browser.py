"""Signing in and out in Chromium, under the page's real Content-Security-Policy."""
from __future__ import annotations

import pytest
from playwright.async_api import expect

from server.auth import store
from server.auth.roles import Role

from .conftest import DESKTOP, PageWatch, screenshot

pytestmark = pytest.mark.browser


@pytest.fixture
async def csp_page(browser):
    """A fresh browser (no cookie), CSP enforced; CSP reports and script errors collected."""
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    page.watch = PageWatch(page)
    page.csp = []
    page.on("console", lambda msg: page.csp.append(msg.text) if "Content Security Policy" in msg.text else None)
    try:
        yield page
    finally:
        await context.close()
    assert page.watch.errors == [] and page.csp == [], (page.watch.errors, page.csp)


@pytest.fixture
def base_url(app_server) -> str:
    return str(app_server.make_url("/")).rstrip("/")


async def test_signing_in_through_the_page_then_out(csp_page, base_url, db):
    page = csp_page
    await store.add_user(db.pool, "ann", Role.admin, "correct horse")
    await page.goto(base_url + "/customers.csv")  # not a page, but a browser asks for one
    await expect(page).to_have_url(base_url + "/login?next=/customers.csv")
    await page.goto(base_url + "/")
    await expect(page.get_by_role("heading", name="Customer import")).to_be_visible()
    await screenshot(page, "sign-in")

    await page.get_by_label("Name").fill("ann")
    await page.get_by_label("Password").fill("wrong horse")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#signin-message")).to_have_text("Wrong name or password.")
    await page.get_by_label("Password").fill("correct horse")
    await page.get_by_role("button", name="Sign in").click()

    await expect(page).to_have_url(base_url + "/")
    await expect(page.locator("#user-name")).to_contain_text("ann")
    await expect(page.locator("#connection")).to_have_text("Live")  # the event stream rides the cookie
    await expect(page.locator("#upload-form")).to_be_visible()
    await screenshot(page, "signed-in")

    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(base_url + "/login")
    await page.goto(base_url + "/")
    await expect(page).to_have_url(base_url + "/login?next=/")


async def test_a_one_time_link_signs_in_once(csp_page, browser, base_url, db):
    page = csp_page
    await store.add_user(db.pool, "bo", Role.viewer)
    link = f"{base_url}/login/link/{await store.create_login_link(db.pool, 'bo')}"
    await page.goto(link)
    await expect(page).to_have_url(base_url + "/")
    await expect(page.locator("#user-name")).to_contain_text("bo")
    await expect(page.locator("#connection")).to_have_text("Live")

    other = await browser.new_context(viewport=DESKTOP)
    try:
        second = await other.new_page()
        await second.goto(link)
        await expect(second.locator("#signin-message")).to_contain_text("used already or has expired")
    finally:
        await other.close()


@pytest.mark.parametrize("role, imports, customers", [("viewer", False, False), ("editor", False, True),
                                                       ("admin", True, True)])
async def test_the_page_shows_only_the_controls_the_role_may_use(csp_page, base_url, db, role, imports, customers):
    """`imports`: the role may upload and control imports; `customers`: create, change and delete customers."""
    page = csp_page
    # A finished job (so the job panel and its controls are on the page) and a customer to open.
    await db.all("INSERT INTO import_jobs (status, filename, path, bytes_total, bytes_done, inserted, started_at, "
                 "finished_at) VALUES ('completed', 'done.csv', '/nowhere/done.csv', 100, 100, 1, now(), now())")
    await db.all("INSERT INTO customers (customer_id, first_name, last_name) VALUES ('C1', 'Ann', 'Lee')")
    await store.add_user(db.pool, "someone", Role[role])
    await page.goto(f"{base_url}/login/link/{await store.create_login_link(db.pool, 'someone')}")
    await expect(page.locator("#connection")).to_have_text("Live")
    await expect(page.locator("#job-status")).to_have_text("completed")
    assert await page.locator("#upload-form").is_visible() is imports
    assert (await page.locator("#import-note").count() == 1) is not imports
    for control in ("#pause-button", "#resume-button", "#cancel-button"):
        assert not await page.locator(control).is_visible(), control  # none applies to a finished job
    assert await page.locator("#new-customer-button").is_visible() is customers

    await page.get_by_role("button", name="Edit Ann Lee").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog.get_by_label("Customer Id")).to_have_value("C1")
    assert await page.locator("#delete-customer-button").is_visible() is customers
    assert await page.locator("#save-customer-button").is_visible() is customers


async def test_a_page_whose_session_ends_goes_to_the_sign_in_page(csp_page, base_url, db):
    page = csp_page
    await store.add_user(db.pool, "fay", Role.editor)
    await page.goto(f"{base_url}/login/link/{await store.create_login_link(db.pool, 'fay')}")
    await expect(page.locator("#connection")).to_have_text("Live")
    await store.remove_user(db.pool, "fay")  # ends her sessions
    await page.locator("#search-input").fill("anything")  # the next API call finds the session gone
    await expect(page).to_have_url(base_url + "/login?next=%2F")
