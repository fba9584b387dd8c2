"""Refuse state-changing requests that another site's page makes in a user's browser.

Browsers send Sec-Fetch-Site (and Origin) with such requests. Requests
signed with a Bearer token need no such check: a browser never adds an
Authorization header to another site's request on its own. Origins listed
in CORS_ORIGINS are trusted by the operator and let through.
"""
from __future__ import annotations

from aiohttp import web

from .auth.middleware import signed_in_via_token
from .keys import config_key

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@web.middleware
async def same_origin_middleware(request: web.Request, handler) -> web.StreamResponse:
    if request.method not in SAFE_METHODS and not signed_in_via_token(request) and _cross_site(request):
        return web.json_response(
            {"error": "cross-site request refused: state changes must come from this site's own pages"},
            status=403)
    return await handler(request)


def _cross_site(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is not None and origin in request.app[config_key].cors_origins:
        return False
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    if origin is None:
        return False
    return origin != f"{request.scheme}://{request.host}"
