"""Puts access control into the app: middlewares, the cookie key, CORS, headers."""
from __future__ import annotations

import aiohttp_cors
from aiohttp import hdrs, web

from ..keys import access_cache_key, config_key
from .cache import AccessCache
from .middleware import access_middleware, allowed_hosts, host_middleware, security_headers
from .sessions import cookie_key_ctx, session_middleware


def access_middlewares(app: web.Application) -> list:
    """Outermost first: a wrong Host is refused before anything else is read."""
    app[access_cache_key] = AccessCache(app[config_key].auth_cache_seconds)
    return [host_middleware(allowed_hosts(app[config_key])), session_middleware(app), access_middleware]


def setup_access(app: web.Application) -> None:
    """After the database context and every route: the cookie key, CORS, the headers."""
    app.cleanup_ctx.append(cookie_key_ctx)
    app.on_response_prepare.append(security_headers)
    _setup_cors(app)


def _setup_cors(app: web.Application) -> None:
    origins = app[config_key].cors_origins
    if not origins:
        return
    options = aiohttp_cors.ResourceOptions(
        allow_credentials=True, allow_headers="*", max_age=600,
        expose_headers=("ETag", "Location", "Retry-After", "WWW-Authenticate"))
    # Every route the router holds has its resource; aiohttp types it optional for routes made alone.
    routes = [(route, route.resource) for route in app.router.routes() if route.resource is not None]
    # A path that answers OPTIONS itself (tus) keeps its own answer, and gives CORS its
    # own way (server/tus/protocol.py). By path: one path can have several resources.
    own_options = {resource.canonical for route, resource in routes if route.method == hdrs.METH_OPTIONS}
    cors = aiohttp_cors.setup(app, defaults={origin: options for origin in origins})
    for route, resource in routes:
        if not isinstance(resource, web.StaticResource) and resource.canonical not in own_options:
            cors.add(route)
