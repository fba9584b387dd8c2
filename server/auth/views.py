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
@describe("Sign in with name and password (form fields `name`, `password`, sent as "
          "application/x-www-form-urlencoded); sets the session cookie",
          responses={303: "signed in: to `next`", 400: "the form is not readable text",
                     401: "text/html: wrong name or password",
                     415: "the form is not sent as application/x-www-form-urlencoded",
                     429: "text/html: too many failed attempts; Retry-After says how long to wait"},
          tags=TAGS)
async def login(request: web.Request) -> web.Response:
    config: Config = request.app[config_key]
    pool = request.app[pool_key]
    form = await _sign_in_form(request)
    name, password = form.get("name", "").strip(), form.get("password", "")
    next_path = _next_path(form.get("next", ""))
    # A name no user can have (store.NAME) is not checked at all; its guesses still
    # count against the address.
    user_key = f"user:{name}" if store.NAME.fullmatch(name) else None
    limits = {f"address:{request.remote}": config.login_max_failures_per_address}
    if user_key is not None:
        limits[user_key] = config.login_max_failures
    try:
        attempt = await store.reserve_attempt(pool, limits, config.login_window_seconds)
    except store.TooManyAttempts as exc:
        return _page(request, error=f"Too many failed attempts. Try again in {_minutes(exc.retry_after)}.",
                     status=429, name=name, next_path=next_path,
                     headers={"Retry-After": str(exc.retry_after)})
    found = None
    if user_key is not None and 0 < len(password) <= MAX_PASSWORD:
        found = await store.check_password(pool, name, password)
    if user_key is None or found is None:  # found is None too when user_key is
        await store.failed(pool, config.login_window_seconds)
        return _page(request, error="Wrong name or password.", status=401, name=name,
                     next_path=next_path)
    await store.succeeded(pool, attempt, user_key)
    await sign_in(request, found.name)
    raise web.HTTPSeeOther(next_path)


async def _sign_in_form(request: web.Request) -> dict[str, str]:
    """The sign-in form's text fields; a body that is not one is the client's error (400, 415)."""
    if request.content_type not in ("", "application/x-www-form-urlencoded"):
        raise web.HTTPUnsupportedMediaType(
            text="The sign-in form is sent as application/x-www-form-urlencoded.")
    try:
        form = await request.post()
    except (ValueError, LookupError):  # not text in its charset, or a charset nobody knows
        raise web.HTTPBadRequest(text="The sign-in form is not readable text (UTF-8).") from None
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _minutes(seconds: int) -> str:
    minutes = -(-seconds // 60)
    return "a minute" if minutes <= 1 else f"{minutes} minutes"


@routes.get("/login/link/{secret}")
@public
@describe("A one-time sign-in link (from `serve` or the `login-link` command): "
          "signs the browser in once, within 15 minutes",
          responses={303: "signed in: to the page", 410: "text/html: used already or expired"}, tags=TAGS)
async def login_link(request: web.Request) -> web.Response:
    user = await store.use_login_link(request.app[pool_key], request.match_info["secret"])
    if user is None:
        return _page(request, status=410,
                     error="This sign-in link was used already or has expired. "
                           "Ask for a new one (the server's login-link command) or sign in below.")
    await sign_in(request, user)
    raise web.HTTPSeeOther("/")


@routes.post("/logout")
@public
@describe("Sign out: ends the session (everywhere its cookie is) and clears the cookie",
          responses={303: "to the sign-in page"}, tags=TAGS)
async def logout(request: web.Request) -> web.Response:
    await sign_out(request)
    raise web.HTTPSeeOther("/login")
