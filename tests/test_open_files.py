"""Idle connections must not use up the open files a server needs to answer anyone."""
from __future__ import annotations

import asyncio
import contextlib
import resource

import aiohttp
import pytest

from tests.processes import cli, free_port, server_env, wait_healthy

IDLE = 1500


def _low_soft_limit() -> None:
    """In the server's process: the 1,024 many systems start a process with."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))


@pytest.mark.slow
async def test_healthz_answers_with_1500_idle_connections_open(db_url, tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < IDLE + 200:
        pytest.fail(f"this machine allows only {hard} open files; the test needs {IDLE + 200}")
    if soft < IDLE + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the test's own end of each connection
    port = free_port()
    proc = cli("serve", "--port", str(port), env=server_env(DATABASE_URL=db_url, IMPORT_DIR=str(tmp_path)),
               preexec_fn=_low_soft_limit)
    url = f"http://127.0.0.1:{port}"
    idle = []
    try:
        await wait_healthy(url, proc)
        opening = [asyncio.create_task(asyncio.open_connection("127.0.0.1", port)) for _ in range(IDLE)]
        done, pending = await asyncio.wait(opening, timeout=60)
        idle = [task.result()[1] for task in done if task.exception() is None]
        assert len(idle) == IDLE and not pending
        await asyncio.sleep(1)  # every one accepted by now, or failing to be
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            async with session.get(f"{url}/healthz") as resp:
                assert resp.status == 200
                assert (await resp.json())["status"] == "ok"
    finally:
        for writer in idle:
            with contextlib.suppress(Exception):
                writer.close()
        proc.kill()
        proc.wait(timeout=10)
