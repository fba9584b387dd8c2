"""./run.sh's own database: kept in DATA_DIR, and back after a kill -9 without manual cleanup."""
import contextlib
import os
import signal
import subprocess
import sys

import psutil
import pytest

from server.embedded import memory_bytes, postmaster_pid
from tests.importing import HEADER, row, write_csv
from tests.processes import cli, free_port, server_env, wait_healthy


@pytest.fixture
def embedded_env(tmp_path):
    env = server_env(DATA_DIR=str(tmp_path / "var"))
    env.pop("DATABASE_URL", None)
    yield env
    # Whatever happened, leave no server of this test behind.
    pid = postmaster_pid(tmp_path / "var" / "pgdata")
    if pid:  # negative while a standalone backend (initdb's) holds the directory
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(abs(pid)).kill()


@pytest.mark.slow
async def test_the_server_comes_back_after_kill_9_of_itself_and_of_postgres(embedded_env, tmp_path):
    port = str(free_port())
    pgdata = tmp_path / "var" / "pgdata"
    first = cli("serve", "--port", port, env=embedded_env)
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", first, timeout=90)
        assert (pgdata / "PG_VERSION").exists(), "the cluster lives in DATA_DIR"
        postgres = postmaster_pid(pgdata)
        first.send_signal(signal.SIGKILL)
        os.kill(postgres, signal.SIGKILL)
        first.wait(10)
    finally:
        first.kill()

    second = cli("serve", "--port", port, env=embedded_env)
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", second, timeout=90)
        assert postmaster_pid(pgdata) != postgres
        # And once more with only the server killed: it joins the Postgres still running.
        second.send_signal(signal.SIGKILL)
        second.wait(10)
        third = cli("serve", "--port", port, env=embedded_env)
        try:
            assert await wait_healthy(f"http://127.0.0.1:{port}", third) < 5
        finally:
            third.send_signal(signal.SIGTERM)
            third.wait(30)
    finally:
        second.kill()
    assert postmaster_pid(pgdata) is None, "a clean stop stops the embedded server too"


async def test_with_database_url_no_embedded_server_is_made(db_url, tmp_path):
    env = server_env(DATA_DIR=str(tmp_path / "var"), DATABASE_URL=db_url)
    port = free_port()
    proc = cli("serve", "--port", str(port), env=env)
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert not (tmp_path / "var" / "pgdata").exists()


@pytest.mark.slow
def test_a_stale_pid_file_of_a_standalone_backend_does_not_stop_the_start(embedded_env, tmp_path):
    """initdb's backends (and single-user mode) write their pid negated into postmaster.pid."""
    def import_one(customer: str) -> None:
        proc = cli("import", str(write_csv(tmp_path / f"{customer}.csv", [HEADER, row(1, customer)])),
                   "--no-progress", env=embedded_env)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err

    import_one("S1")
    gone = subprocess.Popen(["true"])
    gone.wait()
    pgdata = tmp_path / "var" / "pgdata"
    (pgdata / "postmaster.pid").write_text(f"-{gone.pid}\n{pgdata}\n")
    import_one("S2")


SHOW_SETTINGS = """
import sys
from pathlib import Path
import psycopg2
from server.embedded import start_embedded
with psycopg2.connect(start_embedded(Path(sys.argv[1]))) as conn, conn.cursor() as cur:
    cur.execute("SELECT pg_size_bytes(current_setting('shared_buffers')), current_setting('max_wal_size')")
    print(*cur.fetchone())
"""


@pytest.mark.slow
def test_a_new_embedded_cluster_runs_with_memory_for_search_from_its_first_start(embedded_env, tmp_path):
    """shared_buffers takes effect only at a start: a new cluster is restarted once, before use."""
    wanted = max(128, min(4096, memory_bytes() // 4 // 1024**2)) * 1024**2
    pgdata = tmp_path / "var" / "pgdata"
    for start in ("new", "again"):
        done = subprocess.run([sys.executable, "-c", SHOW_SETTINGS, str(pgdata)], env=embedded_env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == [str(wanted), "4GB"], (start, done.stdout)
        assert postmaster_pid(pgdata) is None, "the server stops with its last user, restarted or not"
