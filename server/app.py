"""create_app(config) -> web.Application, nothing else."""
from __future__ import annotations

import aiohttp_jinja2
import jinja2
from aiohttp import web

from . import csvout, history, openapi, uploads
from .auth import views as access_views
from .auth.wiring import access_middlewares, setup_access
from .config import Config
from .customers import warming_ctx
from .db import database_ctx
from .deadlines import body_deadline_middleware
from .errors import error_middleware
from .events import events_ctx, stop_streams
from .forwarded import forwarded_middleware
from .importer.runner import runner_ctx
from .keys import config_key, exports_key, uploads_key
from .lag import lag_ctx
from .metrics import setup_metrics
from .resources import resource_dir
from .security import same_origin_middleware
from .tus import protocol_headers, tus_ctx
from .views import (customers, health, history as history_views, import_jobs, imports, metrics, pages, tus,
                    undo as undo_views)


def create_app(config: Config) -> web.Application:
    app = web.Application(client_max_size=1024**2)
    app[config_key] = config
    # Forwarded addresses first (every later step sees the client's own); errors next, so a
    # database that is away while a token is looked up is a JSON 503 too.
    # A body is read (within its deadline) only for a request that may be answered.
    app.middlewares.extend([forwarded_middleware, error_middleware, *access_middlewares(app),
                            same_origin_middleware, body_deadline_middleware])
    app[uploads_key] = uploads.slots(config)
    app[exports_key] = csvout.slots(config)
    setup_metrics(app)
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("server", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
    )
    # Torn down in reverse: the runner stops, then the event fan-out, then the pool.
    app.cleanup_ctx.append(lag_ctx)
    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(warming_ctx)  # search's relations read into memory meanwhile
    app.cleanup_ctx.append(events_ctx)
    app.cleanup_ctx.append(runner_ctx)
    app.cleanup_ctx.append(history.pruning_ctx)
    app.cleanup_ctx.append(uploads.uploads_ctx)
    app.cleanup_ctx.append(tus_ctx)  # its sweep stops first
    app.on_shutdown.append(stop_streams)  # SSE streams end before the server waits for handlers
    app.on_response_prepare.append(protocol_headers)
    for module in (health, metrics, pages, access_views, imports, import_jobs, customers, history_views, undo_views,
                   tus, openapi):
        app.add_routes(module.routes)
    app.router.add_static("/static", resource_dir("web_static"))
    setup_access(app)  # after the routes: CORS covers them all
    return app
