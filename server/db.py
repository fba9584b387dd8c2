"""The database: where it is, the aiopg pool, and the schema migrations."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TypedDict
from urllib.parse import urlsplit, urlunsplit

import aiopg
import psycopg2
from aiohttp import web
from psycopg2 import sql

from . import multihost, sqlfiles
from .config import Config
from .embedded import start_embedded
from .auth.middleware import principal_label
from .keys import config_key, database_url_key, pool_key, reads_key
from .replica import standby_reads

log = logging.getLogger(__name__)
multihost.install()  # aiopg follows libpq from host to host of a multi-host DATABASE_URL

# Any constant will do as long as every process uses the same one.
MIGRATION_LOCK = 7_342_001
# Migrations run outside the pool's per-statement timeout: one that copies a large
# table takes minutes (003 at 10 M rows), and a second process starting meanwhile
# waits for the migration lock as long as that takes. A week stands for "no limit".
MIGRATION_TIMEOUT = 7 * 24 * 3600.0


async def resolve_database_url(config: Config) -> str:
    """DATABASE_URL, or the embedded server's URL (started in a thread: it blocks)."""
    if config.database_url:
        return config.database_url
    return await asyncio.to_thread(start_embedded, config.pgdata)


def with_database(url: str, dbname: str) -> str:
    """The same server URL, pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def recreate_database(server_url: str, name: str, *, template: str | None = None) -> str:
    """Drop and create database `name` on the server (blocking); return its URL."""
    drop_database(server_url, name)
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    _admin(server_url, create)
    return with_database(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    _admin(server_url, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _admin(server_url: str, statement: sql.Composable) -> None:
    """One statement outside a transaction (CREATE and DROP DATABASE must be)."""
    with contextlib.closing(psycopg2.connect(server_url)) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)


async def migrate_database(url: str) -> list[str]:
    async with aiopg.create_pool(url, minsize=1, maxsize=1) as pool:
        return await migrate(pool)


async def migrate(pool: aiopg.Pool) -> list[str]:
    """Apply pending sql/NNN_*.sql files, each in its own transaction; return their versions.

    The advisory lock makes two processes starting at once apply each file once.
    """
    applied_now = []
    async with pool.acquire() as conn, conn.cursor() as cur:
        async def execute(statement: str, params=None) -> None:
            await cur.execute(statement, params, timeout=MIGRATION_TIMEOUT)

        await execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            await execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            await execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in await cur.fetchall()}
            for version, script in sqlfiles.migrations():
                if version in done:
                    continue
                await execute("BEGIN")
                try:
                    await execute(script)
                    await execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                    await execute("COMMIT")
                except BaseException:
                    await execute("ROLLBACK")
                    raise
                log.info("applied migration %s", version)
                applied_now.append(version)
        finally:
            await cur.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    return applied_now


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    """Database URL, migrated schema and pool for the app's lifetime; with
    DATABASE_READ_URL, the standby's pool and its watch too (server/replica.py)."""
    url = await resolve_database_url(app[config_key])
    app[database_url_key] = url
    async with aiopg.create_pool(url, minsize=1, maxsize=20, timeout=30) as pool:
        await migrate(pool)
        app[pool_key] = pool
        read_url = app[config_key].database_read_url
        if read_url is None:
            yield
            return
        async with standby_reads(pool, read_url) as reads:
            app[reads_key] = reads
            yield


def read_pool(request: web.Request) -> aiopg.Pool:
    """The pool for a customer read: the standby's (DATABASE_READ_URL) when it answers,
    unless this request's principal has just written or it sends Cache-Control: no-cache;
    the primary's otherwise (server/replica.py)."""
    reads = request.app.get(reads_key)
    if reads is None:
        return request.app[pool_key]
    fresh = "no-cache" in request.headers.get("Cache-Control", "").lower()
    return reads.pool_for(principal_label(request), fresh=fresh)


class KeepaliveOptions(TypedDict):
    """The libpq parameters keepalive_options gives psycopg2.connect."""

    keepalives: int
    keepalives_idle: int
    keepalives_interval: int
    keepalives_count: int
    tcp_user_timeout: int
    options: str


def keepalive_options(config: Config, database_url: str) -> KeepaliveOptions:
    """libpq parameters for a connection that holds a job: TCP keepalives at both ends.

    A job is held by its writer connection's session (its advisory lock). If the
    host running it vanishes from the network (power, cable, a VM frozen), nothing
    closes that TCP connection: the server would keep the session, and the lock,
    until the kernel's default keepalive gives up after about two hours, and no
    other process could take the job over. The server's tcp_keepalives_* (sent in
    `options`, per session, no superuser needed) make the server drop the session
    after idle + interval x count seconds; tcp_user_timeout does the same when
    the server was sending and nothing is acknowledged. libpq's own keepalives
    make the client notice a vanished database likewise, instead of waiting for
    ever in a COPY. Unix-socket connections ignore all of it (nothing to lose).
    """
    idle, interval, count = (config.keepalive_idle_seconds, config.keepalive_interval_seconds,
                             config.keepalive_count)
    give_up_ms = (idle + interval * count) * 1000
    own = psycopg2.extensions.parse_dsn(database_url).get("options", "")  # kept, ours added
    return {
        "keepalives": 1, "keepalives_idle": idle, "keepalives_interval": interval, "keepalives_count": count,
        "tcp_user_timeout": give_up_ms,
        "options": own + (" " if own else "") + (f"-c tcp_keepalives_idle={idle} -c tcp_keepalives_interval={interval} "
                    f"-c tcp_keepalives_count={count} -c tcp_user_timeout={give_up_ms}"),
    }


def job_connection(config: Config, database_url: str, application_name: str):
    """The plain psycopg2 connection that holds and writes one job (blocking; see keepalive_options)."""
    return psycopg2.connect(database_url, application_name=application_name,
                            **keepalive_options(config, database_url))


async def ping(pool: aiopg.Pool) -> bool:
    try:
        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT 1")
            return (await cur.fetchone()) == (1,)
    except (psycopg2.Error, OSError, asyncio.TimeoutError):
        return False
