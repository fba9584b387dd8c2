"""Helpers for tests that run the product as separate processes, as users do."""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import aiopg
import psutil

from server.auth import store
from server.auth.roles import Role

REPO = Path(__file__).resolve().parent.parent
_token_names = itertools.count(1)


def server_env(**overrides: str) -> dict[str, str]:
    """The tests' environment for a process of the product: this checkout first on the
    path (the caller's path after it, for tools run around the tests), no PORT."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {name: value for name, value in os.environ.items() if name != "PORT"}
    env["PYTHONPATH"] = path
    env.update(overrides)
    return env


def cli(*args: str, env: dict[str, str], **kwargs) -> subprocess.Popen:
    """Start `python -m server ARGS...` from the repository root."""
    return subprocess.Popen([sys.executable, "-m", "server", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_healthy(url: str, proc: subprocess.Popen | None = None, *, timeout: float = 60,
                       log: Path | None = None) -> float:
    """Seconds until `url`/healthz answers 200; fails if `proc` (the server, or a proxy
    in front of it) exits first, or nothing answers within `timeout` seconds."""
    started = time.monotonic()

    def output() -> str:
        if log is not None:
            return log.read_text(errors="replace")[-3000:]
        return proc.stderr.read()[-3000:] if proc is not None and proc.stderr else ""

    async with aiohttp.ClientSession() as session:
        while time.monotonic() - started < timeout:
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"{url} exited ({proc.returncode}) before it answered: {output()}")
            try:
                async with session.get(f"{url}/healthz") as resp:
                    if resp.status == 200:
                        return time.monotonic() - started
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError(f"{url}/healthz did not answer 200 in {timeout}s: {output()}")


async def admin_headers(db_url: str, role: str = "admin") -> dict[str, str]:
    """Headers that sign a request to a server process on `db_url` in: a new API token
    of `role`, made in that database as `python -m server token create` would."""
    name = f"test-process-{os.getpid()}-{next(_token_names)}"
    async with aiopg.create_pool(db_url, minsize=1, maxsize=1) as pool:
        token = await store.create_token(pool, name, Role[role])
    return {"Authorization": f"Bearer {token}"}


class RssGrowth:
    """How much a process's memory (RSS) grows while a block runs: `async with RssGrowth(pid) as rss:`,
    then `rss.baseline` and `rss.peak` in bytes and `rss.growth_mb`."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.baseline = self.peak = 0
        self._sampler: asyncio.Task | None = None

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.baseline) / 1024**2

    async def __aenter__(self) -> RssGrowth:
        self.baseline = self.peak = max(self.process.memory_info().rss for _ in range(5))
        self._sampler = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc) -> None:
        self._sampler.cancel()
        await asyncio.gather(self._sampler, return_exceptions=True)

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, self.process.memory_info().rss)
            await asyncio.sleep(0.02)


class ServerProcess:
    """`python -m server serve` on a free port: every test that runs the service as a
    separate process starts it through this. It runs as its own process group (a kill -9
    takes its parse workers too), its output goes to files (an unread pipe would fill up
    and stall it): `log` gets stdout, and stderr too unless `stderr_log` is given.

    `async with ServerProcess(env, log) as server:` starts it, waits until /healthz
    answers and stops it as Ctrl-C does. One step at a time: `spawn()`, `wait_healthy()`,
    or `start()` for both; `stop()`, or `kill()` as a crashed machine would; `start()`
    again after either, on the same port. `output()` is what it wrote. `wrapper` runs
    the server through another command (`unshare --mount sh -c ...`).
    """

    def __init__(self, env: dict[str, str], log: Path, *, stderr_log: Path | None = None,
                 port: int | None = None, wrapper: Sequence[str] = ()) -> None:
        self.env = {name: value for name, value in env.items() if name != "PORT"}
        self.log, self.stderr_log = log, stderr_log
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.wrapper = list(wrapper)
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the server was not started"
        return self.proc.pid

    def spawn(self) -> None:
        """Start the process; `wait_healthy()` waits until it serves."""
        command = [*self.wrapper, sys.executable, "-m", "server", "serve", "--port", str(self.port)]
        with contextlib.ExitStack() as files:
            out = files.enter_context(open(self.log, "ab"))
            err = files.enter_context(open(self.stderr_log, "ab")) if self.stderr_log else subprocess.STDOUT
            self.proc = subprocess.Popen(command, cwd=REPO, env=self.env, stdout=out, stderr=err,
                                         start_new_session=True)

    async def wait_healthy(self, timeout: float = 60) -> float:
        """Seconds until it answers /healthz; fails, with its output, if it exits first."""
        assert self.proc is not None, "the server was not started"
        return await wait_healthy(self.url, self.proc, timeout=timeout, log=self.stderr_log or self.log)

    async def start(self, timeout: float = 60) -> float:
        """Spawn it and wait until it serves (killed if it never does)."""
        self.spawn()
        try:
            return await self.wait_healthy(timeout)
        except BaseException:
            self.kill()
            raise

    def output(self) -> str:
        """What it has written so far (stdout, then stderr when that has a file of its own)."""
        logs = [self.log] + ([self.stderr_log] if self.stderr_log else [])
        return "".join(log.read_text(errors="replace") for log in logs if log.exists())

    def kill(self) -> None:
        """kill -9 of the server and its workers, as a crashed machine would."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 30) -> None:
        """As Ctrl-C stops it; killed if it is not gone within `timeout` seconds."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    async def __aenter__(self) -> ServerProcess:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await asyncio.to_thread(self.stop)


class Serve(ServerProcess):
    """A ServerProcess with its stdout and stderr in two files of `folder` (`serve.out`,
    `serve.err`), for tests that read what the server printed: `async with Serve(tmp_path,
    DATABASE_URL=...) as serve:`."""

    def __init__(self, folder: Path, **env: str) -> None:
        self.stdout, self.stderr = folder / "serve.out", folder / "serve.err"
        for output in (self.stdout, self.stderr):
            output.write_bytes(b"")  # this server's output only
        super().__init__(server_env(**env), self.stdout, stderr_log=self.stderr)
        self.base = self.url
