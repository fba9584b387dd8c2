"""Who is asking, and may they: the Host allowlist, the sign-in check, the
role check, and the security headers every response carries."""
from __future__ import annotations

import ipaddress
import logging
import socket

from aiohttp import hdrs, web
from yarl import URL

from ..config import Config
from ..keys import access_cache_key, pool_key, reads_key
from . import store
from ..replica import SAFE_METHODS
from .roles import Principal, Public, required_role
from .sessions import COOKIE, session_principal

log = logging.getLogger(__name__)

principal_key = web.RequestKey("principal", Principal)
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")

SECURITY_HEADERS = {
    # The page loads its own scripts and styles only, and no other site may frame it.
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                                "frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "Referrer-Policy": "same-origin",  # sign-in links never leave in a Referer
}


def allowed_hosts(config: Config) -> frozenset[str]:
    """ALLOWED_HOSTS, else the name the server listens on (plus the loopback names
    when that is a loopback address; plus this machine's names on 0.0.0.0)."""
    if config.allowed_hosts:
        return frozenset(h.lower() for h in config.allowed_hosts)
    host = config.host.lower()
    names = {host if not _is_ipv6(host) else f"[{host}]"}
    if host in ("", "0.0.0.0", "::"):
        log.warning("listening on every interface: set ALLOWED_HOSTS to the names clients use")
        names |= {socket.gethostname().lower(), socket.getfqdn().lower(), *LOOPBACK_NAMES}
    elif _is_loopback(host):
        names |= set(LOOPBACK_NAMES)
    return frozenset(names)


def _is_ipv6(host: str) -> bool:
    return ":" in host


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """The Host header without its port: `[::1]:8080` -> `[::1]`, `Example:80` -> `example`."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[:host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_middleware(allowed: frozenset[str]):
    @web.middleware
    async def check_host(request: web.Request, handler) -> web.StreamResponse:
        # A DNS-rebinding page reaches us under its own name: refuse any name we are not.
        if "*" not in allowed and host_name(request.headers.get(hdrs.HOST, "")) not in allowed:
            return web.json_response({"error": "this server does not answer to that Host name "
                                               "(see ALLOWED_HOSTS)"}, status=400)
        return await handler(request)
    return check_host


@web.middleware
async def access_middleware(request: web.Request, handler) -> web.StreamResponse:
    required = required_role(request.match_info)
    if isinstance(required, Public):  # PUBLIC, its one instance
        return await handler(request)
    authorization = request.headers.get(hdrs.AUTHORIZATION)
    if authorization is not None:
        principal = await _bearer_principal(request, authorization)
        if principal is None:
            return _unauthorized(request, 'Bearer error="invalid_token"',
                                 "the token is unknown, expired or revoked")
    else:
        principal = await _session_principal(request)
        if principal is None:
            return _unauthorized(request, "Bearer", "sign in first: a session cookie or an "
                                                    "Authorization: Bearer token")
    request[principal_key] = principal
    if principal.role < required:
        return web.json_response({"error": f"this needs the {required.name} role; "
                                           f"{principal.label} is {principal.role.name}"}, status=403)
    response = await handler(request)
    if request.method not in SAFE_METHODS and response.status < 400 and (reads := request.app.get(reads_key)):
        reads.wrote(principal.label)  # their next reads see this write (server/replica.py)
    return response


async def _bearer_principal(request: web.Request, authorization: str) -> Principal | None:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return await request.app[access_cache_key].principal(
        "token", token.strip(), lambda: store.token_principal(request.app[pool_key], token.strip()))


async def _session_principal(request: web.Request) -> Principal | None:
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None  # no cookie, no query
    # Keyed by the cookie as sent: the same cookie always holds the same session id.
    return await request.app[access_cache_key].principal("session", cookie, lambda: session_principal(request))


def _unauthorized(request: web.Request, challenge: str, message: str) -> web.Response:
    if request.method in (hdrs.METH_GET, hdrs.METH_HEAD) and "text/html" in request.headers.get(hdrs.ACCEPT, ""):
        # A person at a browser: to the sign-in page, and back here afterwards.
        raise web.HTTPSeeOther(URL("/login").with_query(next=request.path_qs))
    return web.json_response({"error": message}, status=401, headers={hdrs.WWW_AUTHENTICATE: challenge})


def principal(request: web.Request) -> Principal:
    """Who made this request (routes that need a role always have one)."""
    return request[principal_key]


def principal_label(request: web.Request) -> str | None:
    """Who made this request, as a name, or None on a public route."""
    found = request.get(principal_key)
    return None if found is None else found.label


def signed_in_via_token(request: web.Request) -> bool:
    found = request.get(principal_key)
    return found is not None and found.via == "token"


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, errors and static files included."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


__all__ = ["access_middleware", "allowed_hosts", "host_middleware", "principal",
           "security_headers", "signed_in_via_token"]
