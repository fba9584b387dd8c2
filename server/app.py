"""create_app(config) -> web.Application, nothing else."""
from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from .config import Config
from .db import database_ctx
from .importer.runner import runner_ctx
from .keys import config_key
from .views import health, pages

STATIC_DIR = Path(__file__).resolve().parent.parent / "web_static"


def create_app(config: Config) -> web.Application:
    app = web.Application()
    app[config_key] = config
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("server", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
    )
    # Torn down in reverse: the importer stops before the pool closes.
    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(runner_ctx)
    app.add_routes(health.routes)
    app.add_routes(pages.routes)
    app.router.add_static("/static", STATIC_DIR)
    return app
