"""Helpers for tests that run the product as separate processes, as users do."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def server_env(**overrides: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.update(overrides)
    return env


def cli(*args: str, env: dict[str, str], **kwargs) -> subprocess.Popen:
    """Start `python -m server ARGS...` from the repository root."""
    return subprocess.Popen([sys.executable, "-m", "server", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
