"""The product as an operator installs it: a wheel in a fresh virtualenv, run from elsewhere.

The server runs on the embedded PostgreSQL in a temporary DATA_DIR, not on the
suite's DATABASE_URL: that is what `csv-import serve` does for a newcomer, and
it proves the wheel's dependencies bring their own PostgreSQL and that the
migrations inside the wheel build a database from nothing. It costs about two
seconds (initdb) more than reusing the suite's server. Most of the test's
time (~15 s) is the virtualenv's install, from pip's cache when it is warm.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import aiohttp
import psutil
import pytest

from server import __version__
from server.embedded import postmaster_pid
from tests.importing import HEADER, row, write_csv
from tests.processes import REPO, free_port, wait_healthy

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtualenv, outside the checkout, with the wheel built from it installed."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = _clean_checkout(tmp / "source")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp / "dist"),
                    str(source)], check=True, cwd=tmp)
    (wheel,) = (tmp / "dist").glob("csv_import_service-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # The suite's pip installs into the new environment (dependencies from PyPI or
    # pip's cache): quicker than bootstrapping a pip of its own.
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                    "--quiet", str(wheel)], check=True, cwd=tmp)
    return venv


def _clean_checkout(target: Path) -> Path:
    """The files git would commit, copied: a build/ left in the checkout by an
    earlier build would otherwise slip files into the wheel that setup.py forgot."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: leave out what .gitignore does
        shutil.copytree(REPO, target, ignore=shutil.ignore_patterns(
            ".git", ".venv", "var", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
            "test-artifacts"))
        return target
    for name in filter(None, listed):
        if (REPO / name).is_file():  # not a file deleted but not yet committed
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    return target


@pytest.fixture
def elsewhere(tmp_path) -> dict:
    """Another directory to run from, and an environment that cannot see the checkout."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "DATABASE_URL", "XDG_RUNTIME_DIR")}
    env["DATA_DIR"] = str(tmp_path / "data")
    yield {"cwd": cwd, "env": env}
    # Whatever happened, leave no embedded server of this test behind.
    pid = postmaster_pid(tmp_path / "data" / "pgdata")
    if pid:  # negative while initdb's single-user backend holds the directory
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(abs(pid)).kill()


async def call(session: aiohttp.ClientSession, method: str, url: str) -> tuple[int, str]:
    """Every HTTP request of this test, so that credentials can be added in one place."""
    async with session.request(method, url) as resp:
        return resp.status, await resp.text()


def test_the_wheel_carries_the_sql_the_page_assets_and_the_metadata(installed):
    (wheel,) = installed.parent.glob("dist/*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    migrations = {p.name for p in (REPO / "sql").glob("[0-9]*.sql")}
    assert migrations and {f"server/_data/sql/{name}" for name in migrations} <= names
    assert {"server/_data/sql/queries/jobs.sql", "server/_data/web_static/js/app.js",
            "server/templates/index.html"} <= names
    metadata = zipfile.ZipFile(wheel).read(
        f"csv_import_service-{__version__}.dist-info/METADATA").decode()
    assert f"Version: {__version__}" in metadata and "License: MIT" in metadata
    assert "Requires-Python: >=3.11" in metadata and "# Customer CSV import" in metadata


def test_both_commands_answer_their_version_from_any_directory(installed, elsewhere):
    for command in ([str(installed / "bin" / "csv-import")],
                    [str(installed / "bin" / "python"), "-m", "server"]):
        done = subprocess.run([*command, "--version"], capture_output=True, text=True, check=True,
                              **elsewhere)
        assert done.stdout.strip().endswith(f" {__version__}"), done.stdout
    where = subprocess.run([str(installed / "bin" / "python"), "-c", "import server; print(server.__file__)"],
                           capture_output=True, text=True, check=True, **elsewhere).stdout
    assert Path(where.strip()).is_relative_to(installed), "the installed package, not the checkout"


async def test_import_then_serve_and_list_customers_from_the_installed_wheel(installed, elsewhere, tmp_path):
    # The import runs before the server starts: a server beside it may claim the
    # CLI's queued job first (the CLI then exits 2), a race that is not this test's.
    path = write_csv(tmp_path / "few.csv", [HEADER] + [row(i, f"W{i}") for i in range(3)])
    command = str(installed / "bin" / "csv-import")
    done = subprocess.run([command, "import", str(path), "--json", "--no-progress"],
                          capture_output=True, text=True, timeout=120, **elsewhere)
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert (job["status"], job["inserted"]) == ("completed", 3)
    assert "Warning" not in done.stderr, done.stderr

    made = subprocess.run([command, "token", "create", "--name", "smoke", "--role", "viewer"],
                          capture_output=True, text=True, timeout=120, check=True, **elsewhere)
    token = made.stdout.strip().splitlines()[-1]

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen([command, "serve", "--port", str(port)],
                                  stdout=out, stderr=subprocess.STDOUT, **elsewhere)
    try:
        await wait_healthy(url, server, timeout=90, log=log)
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
            status, body = await call(session, "GET", f"{url}/healthz")
            assert status == 200, body
            status, body = await call(session, "GET", f"{url}/customers")
            assert status == 200, body
            assert {c["customer_id"] for c in json.loads(body)["items"]} == {"W0", "W1", "W2"}
            status, body = await call(session, "GET", f"{url}/")
            assert status == 200 and "</html>" in body, body
            status, body = await call(session, "GET", f"{url}/static/js/app.js")
            assert status == 200 and "import" in body
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    assert "Warning" not in log.read_text(), log.read_text()
