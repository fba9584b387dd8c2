"""/login, /login/link/{secret}, /logout: signing a browser in and out."""
from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from ..config import Config
from ..keys import config_key, pool_key
from ..openapi import describe
from . import store
from .roles import public
from .sessions import session_principal, sign_in, sign_out

routes = web.RouteTableDef()
TAGS = ("access",)
MAX_NAME = 64
MAX_PASSWORD = 1024


def _next_path(raw: str | None) -> str:
    """Where to go after signing in: a path of this site only, never `//evil.example`
    (nor `/<TAB>/evil.example`: browsers drop tabs and newlines from a URL)."""
    if (not raw or not raw.startswith("/") or raw.startswith("//") or "\\" in raw
            or any(c.isspace() or ord(c) < 32 for c in raw)):
        return "/"
    return raw


def _page(request: web.Request, *, error: str | None = None, status: int = 200, name: str = "",
          next_path: str | None = None, headers: dict | None = None) -> web.Response:
    next_path = next_path or _next_path(request.query.get("next"))
    response = aiohttp_jinja2.render_template(
        "login.html", request, {"error": error, "name": name, "next": next_path}, status=status)
    response.headers.update(headers or {})
    return response


@routes.get("/login")
@public
@describe("The sign-in page", responses={200: "text/html page"}, tags=TAGS)
async def login_page(request: web.Request) -> web.Response:
    if await session_principal(request) is not None:
        raise web.HTTPSeeOther(_next_path(request.query.get("next")))
    return _page(request)


@routes.post("/login")
@public
@describe("Sign in with name and password (form fields `name`, `password`); sets the session cookie",
          responses={303: "signed in: to `next`", 401: "text/html: wrong name or password",
                     429: "text/html: too many failed attempts; Retry-After says how long to wait"},
          tags=TAGS)
async def login(request: web.Request) -> web.Response:
    config: Config = request.app[config_key]
    pool = request.app[pool_key]
    form = await request.post()
    name, password = str(form.get("name", "")).strip(), str(form.get("password", ""))
    next_path = _next_path(str(form.get("next", "")))
    user_key = f"user:{name[:MAX_NAME]}"
    limits = {user_key: config.login_max_failures,
              f"address:{request.remote}": config.login_max_failures_per_address}
    wait = await store.retry_after(pool, limits, config.login_window_seconds)
    if wait is not None:
        return _page(request, error=f"Too many failed attempts. Try again in {_minutes(wait)}.",
                     status=429, name=name, next_path=next_path, headers={"Retry-After": str(wait)})
    found = None
    if 0 < len(name) <= MAX_NAME and 0 < len(password) <= MAX_PASSWORD:
        found = await store.check_password(pool, name, password)
    if found is None:
        await store.note_failure(pool, list(limits), config.login_window_seconds)
        return _page(request, error="Wrong name or password.", status=401, name=name,
                     next_path=next_path)
    await store.clear_failures(pool, user_key)
    await sign_in(request, found.name)
    raise web.HTTPSeeOther(next_path)


def _minutes(seconds: int) -> str:
    minutes = -(-seconds // 60)
    return "a minute" if minutes <= 1 else f"{minutes} minutes"


@routes.get("/login/link/{secret}")
@public
@describe("A one-time sign-in link (from `serve` or `python -m server login-link`): "
          "signs the browser in once, within 15 minutes",
          responses={303: "signed in: to the page", 410: "text/html: used already or expired"}, tags=TAGS)
async def login_link(request: web.Request) -> web.Response:
    user = await store.use_login_link(request.app[pool_key], request.match_info["secret"])
    if user is None:
        return _page(request, status=410,
                     error="This sign-in link was used already or has expired. "
                           "Ask for a new one (python -m server login-link) or sign in below.")
    await sign_in(request, user)
    raise web.HTTPSeeOther("/")


@routes.post("/logout")
@public
@describe("Sign out: ends the session (everywhere its cookie is) and clears the cookie",
          responses={303: "to the sign-in page"}, tags=TAGS)
async def logout(request: web.Request) -> web.Response:
    await sign_out(request)
    raise web.HTTPSeeOther("/login")
