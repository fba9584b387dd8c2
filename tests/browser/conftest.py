"""Fixtures for driving Debian's Chromium headless against the real app.

Chromium comes from apt (./run.sh test installs it); Playwright never
downloads a browser here, so a missing /usr/bin/chromium fails the tests
with a message instead of skipping them.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiopg
import pytest
from playwright.async_api import Browser, Page, async_playwright
from playwright.async_api import Error as PlaywrightError

from server.auth import store
from server.auth.roles import Role
from tests.conftest import ROOT
from tests.processes import ServerProcess, server_env

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


class SharedChromium:
    """One Chromium for the whole session; each test connects to it (CDP) and gets its own contexts.

    Started here rather than by Playwright's launch(), which lives in one event
    loop, while pytest-aiohttp gives every test a loop of its own. Should Chromium
    itself crash (closing a context whose page holds a beforeunload dialog has been
    seen to take it down), the next test starts a new one instead of every later
    browser test failing to connect.
    """

    def __init__(self, profiles) -> None:
        self.profiles = profiles
        self.proc: subprocess.Popen | None = None
        self._endpoint = ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def endpoint(self) -> str:
        if not self.alive():
            if self.proc is not None:
                print("\nChromium ended during the previous test; starting another", file=sys.stderr)
                self.stop()
            self._start()
        return self._endpoint

    def _start(self) -> None:
        profile = self.profiles.mktemp("chromium-profile")
        # The flags Playwright's own headless launch adds that change what a page sees.
        self.proc = subprocess.Popen(
            [str(CHROMIUM), "--headless", "--hide-scrollbars", "--mute-audio", "--remote-debugging-port=0",
             f"--user-data-dir={profile}", *CHROMIUM_ARGS, "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
        self._endpoint = _devtools_endpoint(self.proc)

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture(scope="session")
def chromium(tmp_path_factory) -> Iterator[SharedChromium]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium` "
                    "(./run.sh test does); the browser tests never download one")
    shared = SharedChromium(tmp_path_factory)
    try:
        yield shared
    finally:
        shared.stop()


def _devtools_endpoint(proc: subprocess.Popen, timeout: float = 60) -> str:
    """The ws:// address Chromium prints on stderr once it listens; its stderr is drained after."""
    found: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in proc.stderr:
            if line.startswith("DevTools listening on "):
                found.put(line.split(" on ", 1)[1].strip())
        found.put("")  # Chromium ended
    threading.Thread(target=read, daemon=True).start()
    try:
        endpoint = found.get(timeout=timeout)
    except queue.Empty:
        endpoint = ""
    if not endpoint:
        proc.kill()
        pytest.fail(f"{CHROMIUM} did not start (no DevTools address within {timeout} s)")
    return endpoint


@pytest.fixture
async def browser(chromium: SharedChromium) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        # is_local: the same machine, so files go to the browser by path, not by copy (50 MB at most)
        browser = await pw.chromium.connect_over_cdp(chromium.endpoint(), is_local=True)
        try:
            yield browser
        finally:
            # Closes the contexts this test made; Chromium stays (unless it crashed: see SharedChromium).
            await _unless_chromium_crashed(chromium, browser.close())


async def _unless_chromium_crashed(chromium: SharedChromium, closing) -> None:
    """Await a close; an error from a Chromium that is no longer running is the browser's crash,
    not the test's (the next test starts a new one), so it is said, not raised."""
    try:
        await closing
    except PlaywrightError:
        await asyncio.sleep(0.5)  # a crashing Chromium takes a moment to be reaped
        if chromium.alive():
            raise
        print("\nChromium crashed while the test's browser closed", file=sys.stderr)


class PageWatch:
    """What the page did that a test must see: script errors and dialogs, each answered
    (dismissed, or accepted when the test says so); `await answered()` waits for the next
    answer. A test must not end with a dialog up: closing a page's context then can
    crash Chromium (seen with beforeunload)."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.accept_dialogs = False
        self.accept_leaving = False  # answer "leave" when the page asks before unloading (mid-upload)
        self._answers: asyncio.Queue[str] = asyncio.Queue()
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("dialog", self._dialog)

    async def _dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        if (self.accept_dialogs and dialog.type == "confirm") or (self.accept_leaving and dialog.type == "beforeunload"):
            await dialog.accept()
        else:
            await dialog.dismiss()
        self._answers.put_nowait(dialog.type)

    async def answered(self, timeout: float = 10) -> str:
        """The type of the next dialog once it has been answered."""
        return await asyncio.wait_for(self._answers.get(), timeout)


@pytest.fixture
async def page(browser: Browser, chromium: SharedChromium) -> AsyncIterator[Page]:
    # Playwright's wait_for_function evaluates its predicate as a string, which the
    # page's CSP (no eval) forbids; test_access_browser.py checks the page under its CSP.
    context = await browser.new_context(viewport=DESKTOP, bypass_csp=True)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    page.watch = PageWatch(page)
    try:
        yield page
    finally:
        await _unless_chromium_crashed(chromium, context.close())
    assert page.watch.errors == [], f"script errors on the page: {page.watch.errors}"


@pytest.fixture
async def live_app(app_server, page, db_url):
    """The real app factory's app on a real port, in the test's event loop, and the
    `page` signed in to it as an admin."""
    url = str(app_server.make_url("/")).rstrip("/")
    await sign_in(page, url, db_url)
    return url, app_server.app


async def sign_in(page: Page, url: str, db_url: str, name: str = "admin", role: str = "admin") -> None:
    """Sign the page's browser in as a person would on first start: by a one-time link.
    Makes the user in the server's database when it is missing."""
    async with aiopg.create_pool(db_url, minsize=1, maxsize=1) as pool:
        if name not in {user.name for user in await store.list_users(pool)}:
            await store.add_user(pool, name, Role[role])
        secret = await store.create_login_link(pool, name)
    await page.goto(f"{url}/login/link/{secret}")
    await page.wait_for_url(f"{url}/")


async def screenshot(page: Page, name: str, *, full_page: bool = False) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    return path


@pytest.fixture
def server_process(db_url: str, tmp_path: Path):
    """The service as a separate process on this test's database, not yet started:
    `await server_process.start()` (again after `kill()`, on the same port)."""
    import_dir = tmp_path / "imports"
    import_dir.mkdir(exist_ok=True)
    env = server_env(DATABASE_URL=db_url, IMPORT_DIR=str(import_dir), DATA_DIR=str(tmp_path / "var"),
                     IMPORT_BATCH_BYTES="65536", WORKER_POLL_SECONDS="0.5")
    server = ServerProcess(env, tmp_path / "server.log")
    server.import_dir = import_dir
    yield server
    server.stop()
