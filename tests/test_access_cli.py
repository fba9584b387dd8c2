"""python -m server user | token | login-link | migrate, and the link `serve` prints on start."""
import asyncio
import re
import subprocess
import sys
import uuid

import aiohttp
import pytest

from server.config import Config
from server.db import drop_database, recreate_database
from tests.processes import REPO, Serve, server_env

# Every test here starts the program as a process (the quick loop leaves them out).
pytestmark = pytest.mark.slow

LINK = re.compile(r"http://\S+/login/link/\S+")


def run(*args, db_url, stdin=None):
    proc = subprocess.run([sys.executable, "-m", "server", *args], cwd=REPO, input=stdin, capture_output=True,
                          text=True, env=server_env(DATABASE_URL=db_url), timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def test_migrate_builds_an_empty_database_and_exits(server_url):
    name = f"csvimp_fresh_{uuid.uuid4().hex[:8]}"
    url = recreate_database(server_url, name)
    try:
        code, _, err = run("migrate", db_url=url)
        assert code == 0, err
        code, out, err = run("user", "list", db_url=url)
        assert (code, out) == (0, "")
    finally:
        drop_database(server_url, name)


async def test_users_are_added_listed_signed_in_and_removed(db_url, anonymous_client):
    code, out, err = run("user", "add", "ann", "--role", "editor", "--password-stdin", db_url=db_url,
                         stdin="correct horse\n")
    assert code == 0, err
    assert "added editor ann, with a password" in out
    code, out, _ = run("user", "add", "bob", "--role", "viewer", db_url=db_url)
    assert code == 0 and "login-link --user bob" in out
    code, _, err = run("user", "add", "ann", "--role", "admin", db_url=db_url)
    assert code == 1 and "exists" in err
    code, _, err = run("user", "add", "cy", "--role", "admin", "--password-stdin", db_url=db_url, stdin="short\n")
    assert code == 2 and "at least 8" in err
    code, out, _ = run("user", "list", db_url=db_url)
    assert [line.split("\t")[:3] for line in out.splitlines()] == [["ann", "editor", "password"],
                                                                   ["bob", "viewer", "link only"]]

    resp = await anonymous_client.post("/login", data={"name": "ann", "password": "correct horse"},
                                       allow_redirects=False)
    assert resp.status == 303
    assert (await anonymous_client.post("/customers", json={"customer_id": "A"})).status == 201

    assert run("user", "remove", "ann", db_url=db_url)[0] == 0
    assert (await anonymous_client.get("/customers")).status == 401
    code, _, err = run("user", "remove", "ann", db_url=db_url)
    assert code == 1 and "no user" in err


async def test_a_token_is_printed_once_works_and_can_be_revoked(db_url, anonymous_client, db):
    code, out, err = run("token", "create", "--name", "grafana", "--role", "viewer", "--expires-days", "30",
                         db_url=db_url)
    assert code == 0, err
    token = out.splitlines()[-1]
    assert token.startswith("csvi_") and " " not in token
    headers = {"Authorization": f"Bearer {token}"}
    assert (await anonymous_client.get("/customers", headers=headers)).status == 200
    assert (await anonymous_client.post("/customers", json={"customer_id": "A"}, headers=headers)).status == 403
    assert 29 <= await db.value("SELECT extract(day FROM expires_at - now()) FROM api_tokens") <= 30

    code, out, _ = run("token", "list", db_url=db_url)
    assert out.startswith("grafana\tviewer\texpires ") and token not in out
    assert run("token", "revoke", "grafana", db_url=db_url)[0] == 0
    assert (await anonymous_client.get("/customers", headers=headers)).status == 401
    code, out, _ = run("token", "list", db_url=db_url)
    assert "\trevoked " in out
    assert run("token", "revoke", "grafana", db_url=db_url)[0] == 1
    code, _, err = run("token", "create", "--name", "x", "--role", "viewer", "--expires-days", "0", db_url=db_url)
    assert code == 2 and "at least 1" in err


async def test_login_link_prints_a_url_that_signs_in_once(db_url, anonymous_client):
    code, _, err = run("login-link", "--user", "nobody", db_url=db_url)
    assert code == 1 and "no user 'nobody'" in err
    code, out, err = run("login-link", db_url=db_url)  # no users yet: makes the first admin
    assert code == 0, err
    [url] = LINK.findall(out)
    path = url.split("://", 1)[1].split("/", 1)[1]
    resp = await anonymous_client.get("/" + path, allow_redirects=False)
    assert resp.status == 303
    assert (await anonymous_client.post("/import", json={"path": "absent.csv"})).status == 404  # admin


async def announcement(serve: Serve) -> str:
    """What `serve` printed once its start-up announcement (the link, or that there is none) is in."""
    for _ in range(50):
        text = serve.stdout.read_text()
        if "Sign in as" in text or "No sign-in link" in text:
            return text
        await asyncio.sleep(0.1)
    return serve.stdout.read_text()


async def test_serve_makes_the_admin_on_first_start_and_prints_a_link(db_url, tmp_path):
    async with Serve(tmp_path, DATABASE_URL=db_url, IMPORT_DIR=str(tmp_path)) as serve:
        links = LINK.findall(await announcement(serve))
        assert links and links[0].startswith(serve.base + "/login/link/"), serve.stdout.read_text()
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            assert (await browser.get(serve.base + "/import")).status == 401
            async with browser.get(links[0]) as page:
                assert page.status == 200 and str(page.url) == serve.base + "/"
                assert "admin" in await page.text()
            assert (await browser.get(serve.base + "/import")).status == 200
            async with browser.get(links[0], allow_redirects=False) as again:
                assert again.status == 410
    code, out, _ = run("user", "list", db_url=db_url)
    assert out.split("\t")[:2] == ["admin", "admin"]


async def test_the_command_serve_prints_for_another_link_works_as_printed(db_url, tmp_path):
    """Copied into a shell outside the virtual environment (no .venv/bin on PATH), from the checkout,
    as the README's `./run.sh` user would: it prints a link that signs in."""
    async with Serve(tmp_path, DATABASE_URL=db_url, IMPORT_DIR=str(tmp_path)) as serve:
        text = await announcement(serve)
        [printed] = re.findall(r"Another link: (.+)", text)
        # The checkout's venv: the README's command, told the port `serve --port` chose.
        assert printed == f"PORT={serve.port} ./run.sh login-link"
        outside = {**server_env(DATABASE_URL=db_url), "PATH": "/usr/local/bin:/usr/bin:/bin"}
        outside.pop("VIRTUAL_ENV", None)
        done = subprocess.run(printed, shell=True, cwd=REPO, env=outside, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        [link] = LINK.findall(done.stdout)
        async with aiohttp.ClientSession() as browser, browser.get(link, allow_redirects=False) as resp:
            assert resp.status == 303


async def test_serve_prints_no_link_when_sign_in_link_on_start_is_off(db_url, db, tmp_path):
    async with Serve(tmp_path, DATABASE_URL=db_url, IMPORT_DIR=str(tmp_path), SIGN_IN_LINK_ON_START="off") as serve:
        output = await announcement(serve)
    assert "No sign-in link printed (SIGN_IN_LINK_ON_START is off)" in output
    assert "/login/link/" not in output and "Sign in as" not in output
    assert await db.value("SELECT count(*) FROM login_links") == 0  # none made, not only unprinted
    code, out, _ = run("user", "list", db_url=db_url)
    assert out.split("\t")[:2] == ["admin", "admin"]  # the first admin is still made: login-link signs it in


def test_a_bad_sign_in_link_on_start_names_the_variable(db_url):
    proc = subprocess.run([sys.executable, "-m", "server", "serve"], cwd=REPO, capture_output=True, text=True,
                          env=server_env(DATABASE_URL=db_url, SIGN_IN_LINK_ON_START="sometimes"), timeout=60)
    assert proc.returncode == 2
    assert "SIGN_IN_LINK_ON_START must be on or off" in proc.stderr


def test_the_systemd_unit_turns_the_link_on_start_off():
    """Under systemd stdout is the journal: a link printed there signs its readers in as admin."""
    unit = (REPO / "deploy" / "systemd" / "csv-import@.service").read_text()
    assignments = dict(item.split("=", 1) for line in unit.splitlines() if line.startswith("Environment=")
                       for item in line.removeprefix("Environment=").split())
    env = {"SIGN_IN_LINK_ON_START": assignments["SIGN_IN_LINK_ON_START"]}
    assert Config.from_env(env).sign_in_link_on_start is False
    assert Config.from_env({}).sign_in_link_on_start is True  # ./run.sh on a laptop: one click


ACCESS_COMMANDS = re.compile(r"(?:python -m server|csv-import) ((?:user|token|login-link|migrate)\b[^`\n#']*)")


def test_the_access_commands_in_the_docs_are_ones_the_cli_takes():
    """Each user/token/login-link/migrate command docs/access.md and docs/operations.md show parses.
    A bad LOG_FORMAT stops the command right after its arguments parsed, before it does anything."""
    commands = {match.strip() for doc in ("access.md", "operations.md")
                for match in ACCESS_COMMANDS.findall((REPO / "docs" / doc).read_text())
                if "[" not in match and "NAME" not in match}
    assert {"token create --name prometheus --role viewer", "user list"} <= commands
    refused = {}
    for command in sorted(commands):
        proc = subprocess.run([sys.executable, "-m", "server", *command.split()], cwd=REPO, capture_output=True,
                              text=True, env=server_env(LOG_FORMAT="unparsed"), timeout=60)
        if "configuration error: LOG_FORMAT" not in proc.stderr:
            refused[command] = proc.stderr.strip().splitlines()[-1:]
    assert refused == {}
