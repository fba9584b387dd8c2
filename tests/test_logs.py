"""LOG_FORMAT=json: every stderr line is one JSON object; jobs, batches and requests carry their fields."""
import asyncio
import json

import aiohttp
import aiopg
import pytest

from server.auth import store
from server.auth.roles import Role
from server.importer import jobs
from tests.importing import HEADER, row, write_csv
from tests.processes import Serve, cli, server_env

# Every test here starts the program as a process (the quick loop leaves them out).
pytestmark = pytest.mark.slow


def records(text: str, *, besides: str | None = None) -> list[dict]:
    """Every line of `text` as JSON, except a last line starting with `besides` (the CLI's report)."""
    lines = list(filter(str.strip, text.splitlines()))
    if besides is not None:
        assert lines[-1].startswith(besides), lines[-1]
        lines = lines[:-1]
    found = []
    for line in lines:
        try:
            found.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}\n{text[-3000:]}") from None
    return found


def test_the_cli_logs_a_job_and_its_batches_as_json(db_url, tmp_path):
    path = write_csv(tmp_path / "some.csv", [HEADER] + [row(i, f"L{i:04}") for i in range(500)] + ["bad"])
    env = server_env(DATABASE_URL=db_url, LOG_FORMAT="json", LOG_LEVEL="debug", IMPORT_BATCH_ROWS="100")
    proc = cli("import", str(path), "--no-progress", env=env)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    logged = records(err, besides="import 1 completed: 500 inserted")
    started = [r for r in logged if r.get("event") == "job_started"]
    batches = [r for r in logged if r.get("event") == "batch_committed"]
    ended = [r for r in logged if r.get("event") == "job_completed"]
    assert len(started) == 1 and started[0]["file"] == "some.csv" and started[0]["level"] == "info"
    assert len(batches) >= 5 and all(b["level"] == "debug" and b["commit_seconds"] >= 0 for b in batches)
    assert sum(b["accepted"] for b in batches) == 500 and sum(b["rejected"] for b in batches) == 1
    assert len(ended) == 1
    assert ended[0]["inserted"] == 500 and ended[0]["rejected"] == 1
    assert ended[0]["bytes_done"] == path.stat().st_size


def test_the_default_stays_plain_text_and_hides_batches(db_url, tmp_path):
    path = write_csv(tmp_path / "plain.csv", [HEADER, row(1, "P1")])
    proc = cli("import", str(path), "--no-progress", env=server_env(DATABASE_URL=db_url))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "import job 1 completed: " in err
    assert not err.lstrip().startswith("{") and "batch to byte" not in err


def test_a_bad_log_format_names_the_variable(db_url):
    proc = cli("migrate", env=server_env(DATABASE_URL=db_url, LOG_FORMAT="xml"))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "LOG_FORMAT" in err


async def test_the_server_logs_each_request_with_status_and_duration(db_url, tmp_path):
    async with Serve(tmp_path, DATABASE_URL=db_url, LOG_FORMAT="json") as serve, aiohttp.ClientSession() as session:
        async with session.get(f"{serve.base}/customers") as resp:
            assert resp.status == 401
    logged = records(serve.stderr.read_text())
    access = [r for r in logged if r["logger"] == "aiohttp.access"]
    healthz = [r for r in access if r["path"] == "/healthz" and r["status"] == 200]
    assert healthz and all(r["method"] == "GET" and r["duration_ms"] >= 0 for r in healthz)
    assert [r["status"] for r in access if r["path"] == "/customers"] == [401]


@pytest.mark.parametrize("log_format", ["plain", "json"])
async def test_the_request_log_keeps_no_sign_in_link_secret(db_url, tmp_path, log_format):
    async with aiopg.create_pool(db_url, minsize=1, maxsize=1) as pool:
        await store.add_user(pool, "ann", Role.admin)
        used, unused = [await store.create_login_link(pool, "ann") for _ in range(2)]
    async with Serve(tmp_path, DATABASE_URL=db_url, LOG_FORMAT=log_format) as serve, \
            aiohttp.ClientSession() as session:
        for secret, status in [(used, 303), (used, 410), (unused + "x", 410)]:
            async with session.get(f"{serve.base}/login/link/{secret}", allow_redirects=False) as resp:
                assert resp.status == status
    text = serve.stderr.read_text()
    assert used not in text and unused not in text
    if log_format == "json":
        access = [r for r in records(text) if r["logger"] == "aiohttp.access"]
        assert [(r["path"], r["status"]) for r in access if r["path"].startswith("/login/")] == [
            ("/login/link/…", 303), ("/login/link/…", 410), ("/login/link/…", 410)]
    else:
        assert text.count("GET /login/link/… 410 ") == 2 and text.count("GET /login/link/… 303 ") == 1


def test_a_job_that_fails_is_logged_as_a_warning_with_its_counters(db_url, tmp_path):
    lines = [HEADER] + [row(i, f"F{i}") for i in range(20)] + ["bad"] * 5
    path = write_csv(tmp_path / "failing.csv", lines)
    proc = cli("import", str(path), "--no-progress", env=server_env(DATABASE_URL=db_url, LOG_FORMAT="json",
                                                                       REJECT_LIMIT="2"))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0, err
    assert "\nimport 1 failed: " in err
    # Only the JSON lines: the summary line follows them.
    logged = records("\n".join(line for line in err.splitlines() if line.startswith("{")))
    [failed] = [r for r in logged if r.get("event") == "job_failed"]
    assert failed["level"] == "warning" and failed["status"] == "failed" and failed["file"] == "failing.csv"
    assert failed["error"].startswith("stopped after 3 rejected rows, more than the limit of 2")
    assert (failed["inserted"], failed["rejected"]) == (20, 3)
    assert not [r for r in logged if r.get("event") == "job_completed"]


async def test_a_server_that_cannot_see_a_jobs_file_logs_that_it_left_it_then_that_it_failed(db_url, tmp_path):
    """job_left (info) while another host might have the file; job_failed once nobody has seen
    it for IMPORT_FILE_WAIT_SECONDS."""
    async with aiopg.create_pool(db_url, minsize=1, maxsize=1) as pool:
        job = await jobs.create(pool, filename="elsewhere.csv", path=tmp_path / "elsewhere.csv", bytes_total=100)
    async with Serve(tmp_path, DATABASE_URL=db_url, LOG_FORMAT="json", WORKER_POLL_SECONDS="0.2",
                     IMPORT_FILE_WAIT_SECONDS="1", IMPORT_DIR=str(tmp_path)) as serve:
        log = serve.stderr
        for _ in range(200):
            if '"job_failed"' in log.read_text():
                break
            await asyncio.sleep(0.05)
    logged = records(log.read_text())
    left = [r for r in logged if r.get("event") == "job_left"]
    failed = [r for r in logged if r.get("event") == "job_failed"]
    assert left, log.read_text()[-3000:]
    assert all(r["level"] == "info" and r["job_id"] == job["id"] and r["file"] == "elsewhere.csv"
               and 0 <= r["unseen_seconds"] < 1 for r in left)
    assert len(failed) == 1, log.read_text()[-3000:]
    assert failed[0]["level"] == "warning" and failed[0]["job_id"] == job["id"]
    assert failed[0]["error"] == "the file elsewhere.csv is no longer there"


@pytest.mark.parametrize("link_on_start", ["on", "off"])
async def test_in_json_every_line_serve_writes_is_a_record(db_url, tmp_path, link_on_start):
    """The banner, aiohttp's "Running on" and the sign-in link are records like the rest;
    the link is in one only where SIGN_IN_LINK_ON_START asks for it."""
    async with Serve(tmp_path, DATABASE_URL=db_url, LOG_FORMAT="json", SIGN_IN_LINK_ON_START=link_on_start) as serve:
        for _ in range(100):  # the banner follows the first answer by a moment
            if "Running on" in serve.stderr.read_text():
                break
            await asyncio.sleep(0.1)
        async with aiohttp.ClientSession() as session, session.get(f"{serve.base}/customers") as resp:
            assert resp.status == 401
    assert serve.stdout.read_text().strip() == ""  # nothing but records, and they go to stderr
    logged = records(serve.stderr.read_text())
    [serving] = [r for r in logged if r.get("event") == "serving"]
    assert serving["message"].startswith(f"Running on http://127.0.0.1:{serve.port}")
    announced = [r for r in logged if r.get("event", "").startswith("sign_in_link")]
    if link_on_start == "on":
        [link] = announced
        assert link["event"] == "sign_in_link" and link["url"].startswith(f"{serve.base}/login/link/")
        assert link["user"] == "admin" and link["command"].endswith("login-link")
    else:
        [off] = announced
        assert off["event"] == "sign_in_link_off" and "/login/link/" not in serve.stderr.read_text()
