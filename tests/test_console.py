"""The command as a user runs it from the checkout: its names, its version, a quiet stderr."""
import contextlib
import json
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from server import __version__
from server.embedded import postmaster_pid
from tests.importing import HEADER, row, write_csv
from tests.processes import cli, server_env

# Every test here starts the program as a process (the quick loop leaves them out).
pytestmark = pytest.mark.slow


@pytest.fixture
def embedded_env(tmp_path):
    env = server_env(DATA_DIR=str(tmp_path / "var"))
    env.pop("DATABASE_URL", None)
    env.pop("XDG_RUNTIME_DIR", None)  # as in containers and cron, where platformdirs warned
    yield env
    pid = postmaster_pid(tmp_path / "var" / "pgdata")
    if pid:
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(abs(pid)).kill()


def test_python_m_server_and_csv_import_print_the_version(tmp_path):
    proc = cli("--version", env=server_env())
    out, err = proc.communicate(timeout=30)
    assert (proc.returncode, out.strip()) == (0, f"python -m server {__version__}"), err
    # The console command of the install in use (run.sh's editable .venv).
    command = Path(sys.executable).parent / "csv-import"
    done = subprocess.run([str(command), "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert (done.returncode, done.stdout.strip()) == (0, f"csv-import {__version__}"), done.stderr


def test_an_import_on_the_embedded_database_writes_no_warning(embedded_env, tmp_path):
    path = write_csv(tmp_path / "one.csv", [HEADER, row(1, "Q1")])
    proc = cli("import", str(path), "--json", "--no-progress", env=embedded_env)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert json.loads(out)["inserted"] == 1
    assert "Warning" not in err, err
