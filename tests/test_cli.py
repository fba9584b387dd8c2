"""The command line as a user types it: python -m server import | generate."""
import json
import signal
import subprocess

import pytest

from server.embedded import psql_path
from server.generate import generate
from tests.importing import HEADER, row, write_csv
from tests.processes import ServerProcess, admin_headers, cli, server_env
from tests.waiting import eventually

# Every test here starts the program as a process (the quick loop leaves them out).
pytestmark = pytest.mark.slow


def run(*args, env, timeout=120):
    proc = cli(*args, env=env)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


async def test_import_prints_the_final_job_and_a_progress_bar(db, db_url, tmp_path):
    path = write_csv(tmp_path / "c.csv", [HEADER] + [row(i, f"C{i}") for i in range(500)] + ["bad"])
    code, out, err = run("import", str(path), "--json", env=server_env(DATABASE_URL=db_url))
    assert code == 0, err
    job = json.loads(out)
    assert (job["status"], job["inserted"], job["rejected"], job["rows_done"]) == ("completed", 500, 1, 501)
    assert job == await db.value("SELECT import_job_json(j) FROM import_jobs j WHERE id = %s", (job["id"],))
    assert "100%" in err and "completed: 500 inserted" in err


async def test_a_failed_import_exits_non_zero_with_the_reason(db_url, tmp_path):
    path = write_csv(tmp_path / "n.csv", ["Name,Email", "Ann,a@b.c"])
    code, out, err = run("import", str(path), "--no-progress", env=server_env(DATABASE_URL=db_url))
    assert code == 1
    assert "Customer Id" in err and out == ""


def test_a_missing_file_is_a_usage_error(db_url, tmp_path):
    code, _, err = run("import", str(tmp_path / "nope.csv"), env=server_env(DATABASE_URL=db_url))
    assert code == 2 and "nope.csv is not a file" in err


@pytest.mark.slow
async def test_ctrl_c_pauses_and_running_again_resumes_the_same_job(db, db_url, tmp_path):
    path = tmp_path / "big.csv"
    generate(path, 20_000, seed=3, about_bytes=300)
    env = server_env(DATABASE_URL=db_url, IMPORT_BATCH_BYTES=str(64 * 1024))
    proc = cli("import", str(path), "--no-progress", env=env)

    async def well_under_way() -> bool:
        return (await db.value("SELECT bytes_done FROM import_jobs ORDER BY id DESC LIMIT 1") or 0) > 200_000
    await eventually(well_under_way, timeout=30)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "paused" in err and "Run the same command again" in err
    paused = await db.one("SELECT id, status, bytes_done FROM import_jobs")
    assert paused[1] == "paused" and 0 < paused[2] < path.stat().st_size

    code, out, err = run("import", str(path), "--json", "--no-progress", env=env)
    assert code == 0, err
    job = json.loads(out)
    assert job["id"] == paused[0] and job["status"] == "completed"
    assert job["inserted"] == 20_000 == await db.value("SELECT count(*) FROM customers")


def test_generate_writes_the_same_bytes_for_the_same_seed_and_psql_reads_them(db_url, tmp_path):
    env = server_env()
    for name in ("a.csv", "b.csv"):
        code, _, err = run("generate", "--rows", "300", "--out", str(tmp_path / name), "--seed", "9",
                           "--about-bytes", "400", env=env)
        assert code == 0, err
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    copy = ("CREATE TEMP TABLE t (idx int, cid text, fn text, ln text, co text, ci text, cn text, "
            "p1 text, p2 text, em text, sd date, ws text, ab text);\n"
            f"\\copy t FROM '{tmp_path / 'a.csv'}' WITH (FORMAT csv, HEADER true)\n"
            "SELECT count(*), count(DISTINCT cid) FROM t;\n")
    result = subprocess.run([psql_path(), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", db_url],
                            input=copy, capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "300|300"


async def test_import_follows_a_server_that_runs_its_job_to_the_end(db, db_url, tmp_path):
    import aiohttp

    path = tmp_path / "shared.csv"
    generate(path, 20_000, seed=6, about_bytes=300)
    env = server_env(DATABASE_URL=db_url, IMPORT_BATCH_BYTES=str(64 * 1024), IMPORT_DIR=str(tmp_path))
    server = ServerProcess(env, tmp_path / "server.log")
    try:
        await server.start()
        async with aiohttp.ClientSession(headers=await admin_headers(db_url)) as session:
            started = await _import_by_path(session, server.url, path.name)
        # The server has the job; the same file from the command line follows it.
        code, out, err = run("import", str(path), "--json", env=env)
        assert code == 0, err
        job = json.loads(out)
        assert (job["id"], job["status"], job["inserted"]) == (started["id"], "completed", 20_000)
        assert "100%" in err and "completed: 20000 inserted" in err
        assert await db.value("SELECT count(*) FROM import_jobs") == 1
    finally:
        server.kill()


async def _import_by_path(session, base_url: str, name: str) -> dict:
    """The one HTTP call of these tests; the session carries an admin token."""
    async with session.post(f"{base_url}/import", json={"path": name}) as resp:
        assert resp.status == 202, await resp.text()
        return await resp.json()


async def test_an_error_in_a_jobs_bookkeeping_fails_it_and_the_next_import_runs(db, db_url, tmp_path):
    # Something the engine does not expect (here a rule the database adds) breaks a step.
    await db.all("ALTER TABLE import_jobs ADD CONSTRAINT few_columns CHECK (cardinality(columns) < 5)")
    wide = write_csv(tmp_path / "wide.csv", [HEADER, row(1, "X1")])
    code, _, err = run("import", str(wide), "--no-progress", env=server_env(DATABASE_URL=db_url))
    assert code == 1, err
    assert "failed: internal error: CheckViolation" in err
    assert await db.value("SELECT status FROM import_jobs") == "failed"
    narrow = write_csv(tmp_path / "narrow.csv", ["Customer Id,First Name", "N1,Ann"])
    code, _, err = run("import", str(narrow), "--no-progress", env=server_env(DATABASE_URL=db_url))
    assert code == 0, err


async def test_import_takes_the_file_options_and_a_dry_run(db, db_url, tmp_path):
    """--delimiter, --encoding, --date-format, --map and --dry-run, as docs/files.md describes them."""
    path = tmp_path / "excel.csv"
    path.write_bytes("Customer Id;FIRSNAME;Note;Subscription Date\r\nE1;Jürgen;x;03/04/2021\r\n"
                     "E2;Zoë;y;05/06/2021\r\n".encode("cp1252"))
    env = server_env(DATABASE_URL=db_url)
    code, _, err = run("import", str(path), "--no-progress", env=env)
    assert code == 2 and "DD/MM/YYYY" in err and "MM/DD/YYYY" in err  # ambiguous: nothing starts
    args = ("import", str(path), "--json", "--no-progress", "--delimiter", ";", "--encoding", "windows-1252",
            "--date-format", "DD/MM/YYYY", "--map", "FIRSNAME=first_name", "--map", "Note=")
    code, out, err = run(*args, "--dry-run", env=env)
    assert code == 0, err
    job = json.loads(out)
    assert (job["inserted"], job["options"]["dry_run"]) == (2, True)
    assert await db.value("SELECT count(*) FROM customers") == 0
    code, out, err = run(*args, env=env)
    assert code == 0, err
    assert json.loads(out)["unknown_columns"] == []
    assert await db.all("SELECT customer_id, first_name, subscription_date::text FROM customers "
                        "ORDER BY customer_id") == [("E1", "Jürgen", "2021-04-03"), ("E2", "Zoë", "2021-06-05")]
    code, _, err = run("import", str(path), "--map", "Note=town", env=env)
    assert code == 2 and "town" in err
