"""A real PostgreSQL for every test: the embedded one (or DATABASE_URL), and a migrated
database per test, as new as a fresh copy of the template (tests/databases.py)."""
from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiopg
import pytest
from aiohttp import web

from server.app import create_app
from server.auth import store
from server.auth.roles import Role
from server.config import Config
from server.db import drop_database, migrate_database, recreate_database, with_database
from server.embedded import start_embedded
from server.keys import pool_key
from tests.databases import WorkerDatabase
from tests.replication import Pair

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def server_url() -> str:
    """An admin URL of the PostgreSQL server the tests use."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    return start_embedded(ROOT / "var" / "test-pgdata")


@pytest.fixture(scope="session")
def template_db(server_url: str) -> Iterator[str]:
    name = f"csvimp_template_{os.getpid()}"
    asyncio.run(migrate_database(recreate_database(server_url, name)))
    yield name
    drop_database(server_url, name)


@pytest.fixture(scope="session")
def replication() -> Iterator[Pair]:
    """A primary and a synchronous streaming standby (tests/replication.py), made when a
    test first asks and stopped at the session's end; `await replication.ready()` first."""
    Pair.sweep(ROOT / "var", "test-replication-")
    pair = Pair(ROOT / "var" / f"test-replication-{os.getpid()}")
    pair.create()
    yield pair
    pair.stop()


@pytest.fixture(scope="session")
def worker_database(server_url: str, template_db: str) -> Iterator[WorkerDatabase]:
    database = WorkerDatabase(server_url, template_db)
    yield database
    database.close()


@pytest.fixture
def db_url(server_url: str, worker_database: WorkerDatabase) -> str:
    """A migrated database for one test, holding nothing a test before it left (tests/databases.py)."""
    return with_database(server_url, worker_database.take())


@pytest.fixture
def config(db_url: str, tmp_path: Path) -> Config:
    import_dir = tmp_path / "imports"
    import_dir.mkdir()
    return Config(
        database_url=db_url,
        data_dir=tmp_path / "var",
        import_dir=import_dir,
        batch_bytes=64 * 1024,
        worker_poll_seconds=0.5,
        # Tests that revoke access expect the very next request to be refused; the cache,
        # and revocation within its time on every process: tests/test_access_cache.py.
        auth_cache_seconds=0,
    )


@pytest.fixture
def app(config: Config) -> web.Application:
    return create_app(config)


@pytest.fixture
def serve_app(aiohttp_server, app: web.Application):
    """Starts the test's app on a real port when first asked; the same server after."""
    started = []

    async def get():
        if not started:
            started.append(await aiohttp_server(app))
        return started[0]
    return get


@pytest.fixture
async def app_server(serve_app):
    """The test's app on a real port; every client fixture talks to this one server."""
    return await serve_app()


_names = itertools.count(1)


def _role(role: Role | str) -> Role:
    return role if isinstance(role, Role) else Role[role]


@pytest.fixture
def client_as(serve_app, aiohttp_client, aiohttp_server):
    """A factory: `await client_as("viewer")` is a client that sends a new token of that
    role on every request. `app=` serves another app (one made with other settings)
    instead of the test's own, which then does not start at all."""
    async def make(role: Role | str = Role.admin, *, app: web.Application | None = None,
                   name: str | None = None):
        server = await serve_app() if app is None else await aiohttp_server(app)
        role = _role(role)
        name = name or f"test-{role.name}-{next(_names)}"
        token = await store.create_token(server.app[pool_key], name, role)
        client = await aiohttp_client(server, headers={"Authorization": f"Bearer {token}"})
        client.token, client.principal_name = token, f"token:{name}"
        return client
    return make


@pytest.fixture
async def client(client_as):
    """Signed in as an admin (a Bearer token on every request): may do everything."""
    return await client_as(Role.admin, name="test-admin")


@pytest.fixture
async def anonymous_client(aiohttp_client, app_server):
    return await aiohttp_client(app_server)


@pytest.fixture
def browser_client(aiohttp_client, app_server):
    """A factory: `await browser_client("editor")` is a client with a session cookie, as a
    browser has after following a one-time sign-in link (and no Authorization header)."""
    async def make(role: Role | str = Role.admin, *, name: str | None = None):
        role = _role(role)
        name = name or f"person-{role.name}-{next(_names)}"
        pool = app_server.app[pool_key]
        await store.add_user(pool, name, role)
        secret = await store.create_login_link(pool, name)
        client = await aiohttp_client(app_server)
        resp = await client.get(f"/login/link/{secret}", allow_redirects=False)
        assert resp.status == 303, await resp.text()
        client.principal_name = name
        return client
    return make


@pytest.fixture
async def db(db_url: str) -> AsyncIterator["Db"]:
    """Direct SQL on the test's database, to check what a user of psql would see."""
    async with aiopg.create_pool(db_url, minsize=1, maxsize=2) as pool:
        yield Db(pool)


class Db:
    def __init__(self, pool: aiopg.Pool) -> None:
        self.pool = pool

    async def all(self, query: str, params=None) -> list[tuple]:
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(query, params)
            return await cur.fetchall() if cur.description else []

    async def one(self, query: str, params=None) -> tuple | None:
        rows = await self.all(query, params)
        return rows[0] if rows else None

    async def value(self, query: str, params=None):
        row = await self.one(query, params)
        return None if row is None else row[0]


__all__ = ["Db", "pool_key"]
