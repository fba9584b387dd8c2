"""create_app(config) -> web.Application, nothing else."""
from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from . import csvout, openapi, uploads
from .config import Config
from .db import database_ctx
from .errors import error_middleware
from .events import events_ctx, stop_streams
from .importer.runner import runner_ctx
from .keys import config_key, exports_key, uploads_key
from .lag import lag_ctx
from .security import same_origin_middleware
from .views import customers, health, imports, pages

STATIC_DIR = Path(__file__).resolve().parent.parent / "web_static"


def create_app(config: Config) -> web.Application:
    app = web.Application(middlewares=[same_origin_middleware, error_middleware],
                          client_max_size=1024**2)
    app[config_key] = config
    app[uploads_key] = uploads.slots(config)
    app[exports_key] = csvout.slots(config)
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("server", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
    )
    # Torn down in reverse: the runner stops, then the event fan-out, then the pool.
    app.cleanup_ctx.append(lag_ctx)
    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(events_ctx)
    app.cleanup_ctx.append(runner_ctx)
    app.cleanup_ctx.append(uploads.uploads_ctx)
    app.on_shutdown.append(stop_streams)  # SSE streams end before the server waits for handlers
    for module in (health, pages, imports, customers, openapi):
        app.add_routes(module.routes)
    app.router.add_static("/static", STATIC_DIR)
    return app
