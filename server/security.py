"""Refuse state-changing requests that another site's page makes in a user's browser.

Browsers send Sec-Fetch-Site (and Origin) with such requests; API clients
such as curl send neither and are let through.
"""
from __future__ import annotations

from aiohttp import web

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@web.middleware
async def same_origin_middleware(request: web.Request, handler) -> web.StreamResponse:
    if request.method not in SAFE_METHODS and _cross_site(request):
        return web.json_response(
            {"error": "cross-site request refused: state changes must come from this site's own pages"},
            status=403)
    return await handler(request)


def _cross_site(request: web.Request) -> bool:
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    return origin != f"{request.scheme}://{request.host}"
