"""./run.sh's own database: kept in DATA_DIR, and back after a kill -9 without manual cleanup."""
import asyncio
import contextlib
import os
import signal
import socket
import time

import aiohttp
import psutil
import pytest

from server.embedded import postmaster_pid
from tests.processes import cli, server_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_healthy(port: int, proc, timeout: float = 90) -> float:
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        while time.monotonic() - started < timeout:
            if proc.poll() is not None:
                raise AssertionError(f"the server exited: {proc.stderr.read()[-3000:]}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    if resp.status == 200:
                        return time.monotonic() - started
            await asyncio.sleep(0.1)
    raise AssertionError("the server did not answer /healthz")


@pytest.fixture
def embedded_env(tmp_path):
    env = server_env(DATA_DIR=str(tmp_path / "var"))
    env.pop("DATABASE_URL", None)
    yield env
    # Whatever happened, leave no server of this test behind.
    pid = postmaster_pid(tmp_path / "var" / "pgdata")
    if pid:
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).kill()


@pytest.mark.slow
async def test_the_server_comes_back_after_kill_9_of_itself_and_of_postgres(embedded_env, tmp_path):
    port = str(free_port())
    pgdata = tmp_path / "var" / "pgdata"
    first = cli("serve", "--port", port, env=embedded_env)
    try:
        await wait_healthy(int(port), first)
        assert (pgdata / "PG_VERSION").exists(), "the cluster lives in DATA_DIR"
        postgres = postmaster_pid(pgdata)
        first.send_signal(signal.SIGKILL)
        os.kill(postgres, signal.SIGKILL)
        first.wait(10)
    finally:
        first.kill()

    second = cli("serve", "--port", port, env=embedded_env)
    try:
        await wait_healthy(int(port), second)
        assert postmaster_pid(pgdata) != postgres
        # And once more with only the server killed: it joins the Postgres still running.
        second.send_signal(signal.SIGKILL)
        second.wait(10)
        third = cli("serve", "--port", port, env=embedded_env)
        try:
            assert await wait_healthy(int(port), third) < 5
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
        await wait_healthy(port, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert not (tmp_path / "var" / "pgdata").exists()
