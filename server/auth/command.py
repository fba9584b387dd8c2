"""python -m server user | token | login-link | migrate, and the sign-in link `serve` prints."""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable

import aiopg
from aiohttp import web

from ..config import Config
from ..db import migrate, resolve_database_url
from ..errors import DomainError
from ..invocation import command
from ..keys import config_key, pool_key
from . import store
from .roles import Role

log = logging.getLogger(__name__)
MIN_PASSWORD = 8
EXIT_ERROR = 1


def add_commands(commands: argparse._SubParsersAction) -> None:
    user = commands.add_parser("user", help="add, list or remove people who sign in")
    user_commands = user.add_subparsers(dest="action", required=True)
    add = user_commands.add_parser("add", help="add a user (no password: they sign in by login-link)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=[r.name for r in Role])
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    user_commands.add_parser("list", help="every user and role")
    remove = user_commands.add_parser("remove", help="remove a user and end their sessions")
    remove.add_argument("name")

    token = commands.add_parser("token", help="create, list or revoke API tokens")
    token_commands = token.add_subparsers(dest="action", required=True)
    create = token_commands.add_parser("create", help="print a new token, once")
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=[r.name for r in Role])
    create.add_argument("--expires-days", type=_positive, help="valid for N days (default: until revoked)")
    token_commands.add_parser("list", help="every token, without its secret")
    revoke = token_commands.add_parser("revoke", help="revoke a token at once")
    revoke.add_argument("name")

    link = commands.add_parser("login-link", help="print a one-time sign-in URL (15 minutes)")
    link.add_argument("--user", help="who it signs in (default: the first admin)")

    commands.add_parser("migrate", help="apply the schema migrations and exit")


def _positive(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of days, at least 1, got {raw!r}")
    return int(raw)


def run_access_command(config: Config, args: argparse.Namespace) -> int:
    if args.command == "migrate":
        return asyncio.run(_with_pool(config, _migrated))
    if args.command == "login-link":
        return asyncio.run(_with_pool(config, lambda pool: _login_link(pool, config, args.user)))
    if args.command == "user" and args.action == "add":
        password = None
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
            if len(password) < MIN_PASSWORD:
                print(f"user add: a password has at least {MIN_PASSWORD} characters", file=sys.stderr)
                return 2
        return asyncio.run(_with_pool(config, lambda pool: _add_user(pool, args.name, Role[args.role], password)))
    action = {
        ("user", "list"): _list_users,
        ("user", "remove"): lambda pool: _remove_user(pool, args.name),
        ("token", "create"): lambda pool: _create_token(pool, args.name, Role[args.role], args.expires_days),
        ("token", "list"): _list_tokens,
        ("token", "revoke"): lambda pool: _revoke_token(pool, args.name),
    }[(args.command, args.action)]
    return asyncio.run(_with_pool(config, action))


async def _with_pool(config: Config, action: Callable[[aiopg.Pool], Awaitable[None]]) -> int:
    url = await resolve_database_url(config)
    async with aiopg.create_pool(url, minsize=1, maxsize=2) as pool:
        await migrate(pool)
        try:
            await action(pool)
        except DomainError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR
    return 0


async def _migrated(pool: aiopg.Pool) -> None:
    print("the schema is up to date", file=sys.stderr)


async def _add_user(pool: aiopg.Pool, name: str, role: Role, password: str | None) -> None:
    await store.add_user(pool, name, role, password)
    how = "with a password" if password is not None else \
        f"without a password: sign in with `{command(f'login-link --user {name}')}`"
    print(f"added {role.name} {name}, {how}")


async def _list_users(pool: aiopg.Pool) -> None:
    for user in await store.list_users(pool):
        print(f"{user.name}\t{user.role.name}\t{'password' if user.has_password else 'link only'}\t"
              f"{user.created_at:%Y-%m-%d %H:%M}")


async def _remove_user(pool: aiopg.Pool, name: str) -> None:
    await store.remove_user(pool, name)
    print(f"removed {name}; their sessions have ended")


async def _create_token(pool: aiopg.Pool, name: str, role: Role, expires_days: int | None) -> None:
    token = await store.create_token(pool, name, role, expires_days)
    until = f"for {expires_days} days" if expires_days else "until revoked"
    print(f"token {name} ({role.name}), valid {until}. It is shown this once; send it as "
          "`Authorization: Bearer TOKEN`:")
    print(token)


async def _list_tokens(pool: aiopg.Pool) -> None:
    for token in await store.list_tokens(pool):
        state = (f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else
                 f"expires {token.expires_at:%Y-%m-%d %H:%M}" if token.expires_at else "no expiry")
        print(f"{token.name}\t{token.role.name}\t{state}")


async def _revoke_token(pool: aiopg.Pool, name: str) -> None:
    await store.revoke_token(pool, name)
    print(f"revoked {name}")


async def _login_link(pool: aiopg.Pool, config: Config, user: str | None) -> None:
    user = user or await store.ensure_first_admin(pool)
    if user is None:
        raise store.UnknownUser(f"there is no admin: add one with `{command('user add NAME --role admin')}`")
    secret = await store.create_login_link(pool, user)
    print(f"sign in as {user} within 15 minutes, once:", file=sys.stderr)
    print(login_url(config, secret))


def login_url(config: Config, secret: str) -> str:
    if config.public_url:
        base = config.public_url
    else:
        host = {"0.0.0.0": "localhost", "::": "localhost", "": "localhost"}.get(config.host, config.host)
        base = f"http://{f'[{host}]' if ':' in host else host}:{config.port}"
    return f"{base}/login/link/{secret}"


def sign_in_announcer(served: dict[str, str]) -> Callable[[web.Application], Awaitable[None]]:
    """on_startup of `serve`: the first start makes user `admin`; every start prints a link,
    unless SIGN_IN_LINK_ON_START is off (a journal must not hold a live admin link).
    With LOG_FORMAT=json each of these is a log record (`event` says which) on stderr.
    `served` holds HOST or PORT when --host or --port changed them: the printed command
    needs them to make links to this server."""
    async def announce(app: web.Application) -> None:
        await _announce_sign_in(app, served)
    return announce


async def _announce_sign_in(app: web.Application, served: dict[str, str]) -> None:
    pool, config = app[pool_key], app[config_key]
    user = await store.ensure_first_admin(pool)
    add_admin, another = command("user add NAME --role admin"), command("login-link", served)
    if user is None:
        _announce(config, f"No admin user: add one with `{add_admin}`", event="no_admin", command=add_admin)
        return
    if not config.sign_in_link_on_start:
        _announce(config, f"No sign-in link printed (SIGN_IN_LINK_ON_START is off): get one with `{another}`",
                  event="sign_in_link_off", command=another)
        return
    url = login_url(config, await store.create_login_link(pool, user))
    if config.log_format == "json":
        log.info("sign in as %s (one click, within 15 minutes, once): %s; another link: %s", user, url, another,
                 extra={"event": "sign_in_link", "user": user, "url": url, "command": another})
    else:
        print(f"\nSign in as {user} (one click, within 15 minutes, once):\n    {url}\n"
              f"Another link: {another}\n", flush=True)


def _announce(config: Config, message: str, **fields: str) -> None:
    if config.log_format == "json":
        log.info(message, extra=fields)
    else:
        print(message, flush=True)
