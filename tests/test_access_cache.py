"""Access checks off the hot path: whose a token or session is, remembered for
AUTH_CACHE_SECONDS by each process; a revocation reaches every process within that time."""
from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from server.app import create_app
from server.auth import store
from server.auth.cache import AccessCache
from server.auth.roles import Principal, Role
from server.auth.sessions import COOKIE
from server.config import Config, ConfigError
from server.keys import pool_key

CACHE_SECONDS = 3.0


async def refused_within(seconds: float, request) -> float:
    """Seconds until `request()` answers 401; fails if it still lets the client in after `seconds`
    (plus a second for a loaded machine)."""
    started = time.monotonic()
    while True:
        resp = await request()
        if resp.status == 401:
            return time.monotonic() - started
        assert resp.status == 200, (resp.status, await resp.text())
        assert time.monotonic() - started < seconds + 1.0, f"still let in after {seconds} s"
        await asyncio.sleep(0.05)


@pytest.fixture
async def two_processes(config, aiohttp_server, aiohttp_client):
    """Two apps on one database, as two server processes would be, each with its own cache."""
    cached = dataclasses.replace(config, auth_cache_seconds=CACHE_SECONDS)
    servers = [await aiohttp_server(create_app(cached)) for _ in range(2)]
    return servers, [await aiohttp_client(server) for server in servers]


async def test_a_revoked_token_is_refused_by_every_process_within_the_cache_time(two_processes, db):
    (a, _), clients = two_processes
    token = await store.create_token(db.pool, "dashboard", Role.viewer)
    headers = {"Authorization": f"Bearer {token}"}
    for client in clients:  # a new token works at once: only acceptances are kept
        assert (await client.get("/customers", headers=headers)).status == 200
    revoked_at = time.monotonic()
    await store.revoke_token(a.app[pool_key], "dashboard")
    # Both still remember it (a request right after the revocation is still let in) ...
    for client in clients:
        assert (await client.get("/customers", headers=headers)).status == 200
    # ... and both refuse it once their entry is older than AUTH_CACHE_SECONDS.
    for client in clients:
        await refused_within(CACHE_SECONDS - (time.monotonic() - revoked_at),
                             lambda client=client: client.get("/customers", headers=headers))


async def test_a_signed_out_session_and_a_removed_user_are_refused_everywhere_within_the_cache_time(
        two_processes, db):
    (a, _), clients = two_processes
    pool = a.app[pool_key]
    cookies = {}
    for name in ("sam", "dee"):
        await store.add_user(pool, name, Role.editor)
        resp = await clients[0].get(f"/login/link/{await store.create_login_link(pool, name)}",
                                    allow_redirects=False)
        assert resp.status == 303
        cookies[name] = {"Cookie": f"{COOKIE}={resp.cookies[COOKIE].value}"}
        clients[0].session.cookie_jar.clear()
    for client in clients:  # the cookie is good on either process (the key is in the database)
        for cookie in cookies.values():
            assert (await client.get("/customers", headers=cookie)).status == 200

    # Sam signs out on process A; Dee is removed by an admin (the CLI, another process).
    ended_at = time.monotonic()
    assert (await clients[0].post("/logout", headers=cookies["sam"], allow_redirects=False)).status == 303
    await store.remove_user(pool, "dee")
    for client in clients:
        for cookie in cookies.values():
            await refused_within(CACHE_SECONDS - (time.monotonic() - ended_at),
                                 lambda client=client, cookie=cookie: client.get("/customers", headers=cookie))


async def test_with_the_cache_off_a_revocation_is_refused_at_once(config, aiohttp_client, db):
    client = await aiohttp_client(create_app(dataclasses.replace(config, auth_cache_seconds=0)))
    token = await store.create_token(db.pool, "ci", Role.viewer)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/customers", headers=headers)).status == 200
    await store.revoke_token(db.pool, "ci")
    assert (await client.get("/customers", headers=headers)).status == 401


async def test_the_cache_is_bounded_and_keeps_no_refusal():
    now = [0.0]
    cache = AccessCache(5, max_entries=2, clock=lambda: now[0])
    asked = []

    def look_up(answer):
        async def ask():
            asked.append(answer)
            return answer
        return ask

    ann = Principal("ann", Role.viewer, "token")
    assert await cache.principal("token", "t1", look_up(None)) is None
    assert await cache.principal("token", "t1", look_up(ann)) == ann  # a refusal was not kept
    assert await cache.principal("token", "t1", look_up(None)) == ann  # an acceptance is
    now[0] = 5.0
    assert await cache.principal("token", "t1", look_up(None)) is None  # ... for 5 s
    for secret in ("a", "b", "c"):
        await cache.principal("token", secret, look_up(ann))
    assert len(cache) == 2
    assert asked == [None, ann, None, ann, ann, ann]


def test_auth_cache_seconds_is_a_setting_from_0_to_300():
    assert Config.from_env({}).auth_cache_seconds == 5
    assert Config.from_env({"AUTH_CACHE_SECONDS": "0"}).auth_cache_seconds == 0
    for bad in ("-1", "301", "soon"):
        with pytest.raises(ConfigError, match="AUTH_CACHE_SECONDS"):
            Config.from_env({"AUTH_CACHE_SECONDS": bad})
