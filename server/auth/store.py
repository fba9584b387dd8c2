"""People, API tokens, one-time sign-in links, sessions and failed sign-ins.

Data functions take the pool first and raise domain errors. Secrets are
made here and only their hashes go to the database: argon2id for passwords
(slow on purpose: people choose guessable ones), SHA-256 for tokens, links
and session ids (32 random bytes: a fast hash loses nothing there).
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import hmac
import re
import secrets
from datetime import datetime

import aiopg
import argon2
import psycopg2
from argon2.exceptions import InvalidHashError, VerificationError

from .. import sqlfiles
from ..errors import Conflict, DomainError, NotFound
from .roles import Principal, Role

Q = sqlfiles.queries("auth")
TOKEN_PREFIX = "csvi_"  # recognisable in a leaked-secrets scan
NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
LINK_SECONDS = 15 * 60

_hasher = argon2.PasswordHasher()  # argon2id with the library's current recommended costs


@functools.cache
def _dummy_hash() -> str:
    """Verified against for unknown names, so they take as long as known ones (made once, when needed)."""
    return _hasher.hash(secrets.token_urlsafe(16))


class InvalidName(DomainError):
    status = 422


class UnknownUser(NotFound):
    pass


class UnknownToken(NotFound):
    pass


class NameTaken(Conflict):
    pass


@dataclasses.dataclass(frozen=True)
class UserRow:
    name: str
    role: Role
    has_password: bool
    created_at: datetime


@dataclasses.dataclass(frozen=True)
class TokenRow:
    name: str
    role: Role
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise InvalidName("a name is 1 to 64 letters, digits or . _ @ -")
    return name


async def _all(pool: aiopg.Pool, query: str, params: dict | None = None) -> list[tuple]:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(query, params)
        return await cur.fetchall() if cur.description else []


async def _one(pool: aiopg.Pool, query: str, params: dict | None = None) -> tuple | None:
    rows = await _all(pool, query, params)
    return rows[0] if rows else None


# Users

async def add_user(pool: aiopg.Pool, name: str, role: Role, password: str | None = None) -> None:
    check_name(name)
    password_hash = None if password is None else await asyncio.to_thread(_hasher.hash, password)
    if await _one(pool, Q["add_user"], {"name": name, "role": role.name, "password_hash": password_hash}) is None:
        raise NameTaken(f"user {name!r} exists")


async def ensure_first_admin(pool: aiopg.Pool, name: str = "admin") -> str | None:
    """Create `admin` on a database without users; return the first admin's name, if any."""
    await _one(pool, Q["add_first_admin"], {"name": name})
    row = await _one(pool, Q["first_admin"])
    return None if row is None else row[0]


async def list_users(pool: aiopg.Pool) -> list[UserRow]:
    return [UserRow(name, Role[role], has_password, created)
            for name, role, has_password, created in await _all(pool, Q["list_users"])]


async def remove_user(pool: aiopg.Pool, name: str) -> None:
    """Removes the user, their sessions and links (the foreign keys cascade)."""
    if await _one(pool, Q["remove_user"], {"name": name}) is None:
        raise UnknownUser(f"no user {name!r}")


async def check_password(pool: aiopg.Pool, name: str, password: str) -> Principal | None:
    """The user, when the password is theirs. Takes as long for unknown names."""
    row = await _one(pool, Q["user_by_name"], {"name": name})
    stored = row[2] if row is not None and row[2] is not None else await asyncio.to_thread(_dummy_hash)
    try:
        await asyncio.to_thread(_hasher.verify, stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or row[2] is None:
        return None
    if _hasher.check_needs_rehash(stored):  # costs raised since: store the stronger hash
        new_hash = await asyncio.to_thread(_hasher.hash, password)
        await _all(pool, Q["set_password_hash"], {"name": name, "password_hash": new_hash})
    return Principal(row[0], Role[row[1]], "session")


# API tokens

async def create_token(pool: aiopg.Pool, name: str, role: Role, expires_days: int | None = None) -> str:
    """A new token; the caller shows it once, the database keeps its hash."""
    check_name(name)
    token = TOKEN_PREFIX + new_secret()
    if await _one(pool, Q["add_token"], {"name": name, "role": role.name, "token_hash": digest(token),
                                         "expires_days": expires_days}) is None:
        raise NameTaken(f"token {name!r} exists (revoked tokens keep their names)")
    return token


async def token_principal(pool: aiopg.Pool, token: str) -> Principal | None:
    """The token's holder if it is valid: known, not revoked, not expired."""
    wanted = digest(token)
    row = await _one(pool, Q["token_by_hash"], {"token_hash": wanted})
    if row is None or not hmac.compare_digest(bytes(row[2]), wanted):
        return None
    return Principal(row[0], Role[row[1]], "token")


async def list_tokens(pool: aiopg.Pool) -> list[TokenRow]:
    return [TokenRow(name, Role[role], created, expires, revoked)
            for name, role, created, expires, revoked in await _all(pool, Q["list_tokens"])]


async def revoke_token(pool: aiopg.Pool, name: str) -> None:
    if await _one(pool, Q["revoke_token"], {"name": name}) is None:
        raise UnknownToken(f"no active token {name!r}")


# One-time sign-in links

async def create_login_link(pool: aiopg.Pool, user: str) -> str:
    """The secret of a link that signs `user` in once, within 15 minutes."""
    if await _one(pool, Q["user_by_name"], {"name": user}) is None:
        raise UnknownUser(f"no user {user!r}")
    secret = new_secret()
    await _all(pool, Q["add_login_link"], {"token_hash": digest(secret), "user_name": user,
                                           "seconds": LINK_SECONDS})
    return secret


async def use_login_link(pool: aiopg.Pool, secret: str) -> str | None:
    """The user the link signs in, the first time only."""
    row = await _one(pool, Q["use_login_link"], {"token_hash": digest(secret)})
    return None if row is None else row[0]


# Browser sessions (the encrypted cookie holds the id; see sessions.py)

async def open_session(pool: aiopg.Pool, user: str, seconds: int) -> str:
    session_id = new_secret()
    await _all(pool, Q["add_session"], {"id_hash": digest(session_id), "user_name": user, "seconds": seconds})
    return session_id


async def session_principal(pool: aiopg.Pool, session_id: str) -> Principal | None:
    wanted = digest(session_id)
    row = await _one(pool, Q["session_user"], {"id_hash": wanted})
    if row is None or not hmac.compare_digest(bytes(row[2]), wanted):
        return None
    return Principal(row[0], Role[row[1]], "session")


async def end_session(pool: aiopg.Pool, session_id: str) -> None:
    await _all(pool, Q["end_session"], {"id_hash": digest(session_id)})


# The sign-in rate limit

@dataclasses.dataclass(frozen=True)
class Attempt:
    """A sign-in attempt counted (as a failure) before its password is checked."""

    keys: tuple[str, ...]
    at: datetime


class TooManyAttempts(Exception):
    """A key (`user:NAME`, `address:IP`) has reached its limit of failures in the window."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after} s")
        self.retry_after = retry_after


async def reserve_attempt(pool: aiopg.Pool, limits: dict[str, int], window: int) -> Attempt:
    """Count one attempt against every key of `limits` (key -> most failures in `window`
    seconds), or raise TooManyAttempts when one key is full.

    Counting before the password check, under a lock per key held by the database, is
    what makes the limit hold against guesses sent all at once, to any process: the
    check itself takes a while (argon2), and every guess that got past a count made
    before the others were written would be checked.
    """
    keys = sorted(limits)
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("BEGIN")
        try:
            await cur.execute(Q["lock_sign_in_keys"], {"keys": keys})
            await cur.execute(Q["reserve_attempt"], {"keys": keys, "limits": [limits[k] for k in keys],
                                                     "window": window})
            wait, at = await cur.fetchone()
            await cur.execute("COMMIT")
        except Exception:
            # Rolled back here; a cancelled one is closed by the pool (it is not idle).
            with contextlib.suppress(psycopg2.Error):
                await cur.execute("ROLLBACK")
            raise
    if wait is not None:
        raise TooManyAttempts(wait)
    return Attempt(tuple(keys), at)


async def failed(pool: aiopg.Pool, window: int) -> None:
    """The attempt stays counted; housekeeping of what has expired meanwhile."""
    await _all(pool, Q["forget_expired_failures"], {"window": window})


async def succeeded(pool: aiopg.Pool, attempt: Attempt, user_key: str) -> None:
    """The attempt is taken back, and the user's earlier failures are forgotten."""
    await _all(pool, Q["take_back_attempt"], {"keys": list(attempt.keys), "at": attempt.at})
    await _all(pool, Q["clear_failures"], {"key": user_key})


# Secrets the processes share

async def shared_secret(pool: aiopg.Pool, name: str, make) -> str:
    """The secret stored under `name`, made by `make()` by whichever process asks first."""
    await _all(pool, Q["add_secret"], {"name": name, "value": make()})
    row = await _one(pool, Q["secret"], {"name": name})
    assert row is not None  # add_secret has just stored it, or found it there
    return row[0]
