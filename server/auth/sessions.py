"""Browser sessions: an encrypted cookie (aiohttp-session) that holds a session
id, and a row in user_sessions that says whose it is and until when.

The cookie alone proves nothing after sign-out or expiry: the row decides,
so signing out (or removing a user) ends the session everywhere at once.
The cookie key is made once and kept in the database, so every process on
the database reads every other's cookies; it is never in the repository.
"""
from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp_session
from aiohttp import web
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet

from ..config import Config
from ..keys import config_key, pool_key
from . import store
from .roles import Principal

COOKIE = "csvimp_session"
SESSION_ID = "sid"
cookie_storage_key = web.AppKey("cookie_storage", EncryptedCookieStorage)


def _cookie_params(config: Config) -> dict:
    # Lax: sent on a link followed from another site, never on its POSTs or fetches.
    # Secure when people reach the server over https (PUBLIC_URL says so).
    secure = (config.public_url or "").startswith("https://")
    return {"cookie_name": COOKIE, "max_age": config.session_max_age, "httponly": True, "samesite": "Lax",
            "secure": secure}


class DatabaseKeyStorage(aiohttp_session.AbstractStorage):
    """aiohttp-session's encrypted cookies, with the key read from the database at
    startup (the middleware must exist before the app starts; the key after)."""

    def __init__(self, app: web.Application) -> None:
        super().__init__(**_cookie_params(app[config_key]))
        self._app = app

    async def load_session(self, request: web.Request) -> aiohttp_session.Session:
        return await self._app[cookie_storage_key].load_session(request)

    async def save_session(self, request: web.Request, response: web.StreamResponse,
                           session: aiohttp_session.Session) -> None:
        await self._app[cookie_storage_key].save_session(request, response, session)


def session_middleware(app: web.Application):
    return aiohttp_session.session_middleware(DatabaseKeyStorage(app))


async def cookie_key_ctx(app: web.Application) -> AsyncIterator[None]:
    key = await store.shared_secret(app[pool_key], "session_cookie_key",
                                    lambda: Fernet.generate_key().decode("ascii"))
    app[cookie_storage_key] = EncryptedCookieStorage(
        Fernet(key.encode("ascii")), **_cookie_params(app[config_key]))
    yield


async def sign_in(request: web.Request, user: str) -> None:
    """A new session for `user` (never the old one's id: no session fixation)."""
    session = await aiohttp_session.new_session(request)
    session[SESSION_ID] = await store.open_session(request.app[pool_key], user,
                                                   request.app[config_key].session_max_age)


async def sign_out(request: web.Request) -> None:
    session = await aiohttp_session.get_session(request)
    session_id = session.get(SESSION_ID)
    if isinstance(session_id, str):
        await store.end_session(request.app[pool_key], session_id)
    session.invalidate()


async def session_principal(request: web.Request) -> Principal | None:
    if COOKIE not in request.cookies:
        return None  # no cookie, no query
    session = await aiohttp_session.get_session(request)
    session_id = session.get(SESSION_ID)
    if not isinstance(session_id, str):
        return None
    return await store.session_principal(request.app[pool_key], session_id)
