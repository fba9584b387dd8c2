"""Behind a proxy: the client's address and scheme, from X-Forwarded-* of trusted proxies only.

nginx (deploy/nginx/csv-import.conf) connects from its own address, so
without this every client would share one address (the per-address sign-in
limit would hold everyone up together) and a TLS-terminating proxy's
clients would look like plain http. Headers from any other peer are
ignored: anyone can send them.
"""
from __future__ import annotations

from typing import TypedDict

from aiohttp import web

from .keys import config_key


class _Changes(TypedDict, total=False):
    """What web.Request.clone is given: only what the proxy told us."""

    scheme: str
    remote: str


@web.middleware
async def forwarded_middleware(request: web.Request, handler) -> web.StreamResponse:
    trusted = request.app[config_key].trusted_proxies
    if trusted and request.remote in trusted:
        changes: _Changes = {}
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[-1].strip().lower()
        if proto in ("http", "https"):
            changes["scheme"] = proto
        hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
        # Proxies append: the client is the nearest address that is not one of ours.
        for hop in reversed(hops):
            if hop not in trusted:
                changes["remote"] = hop
                break
        if changes:
            request = request.clone(**changes)
    return await handler(request)
