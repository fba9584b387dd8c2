"""/metrics: the process's figures for Prometheus (server/metrics.py keeps them)."""
from __future__ import annotations

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..auth.roles import Role, requires
from ..keys import metrics_key
from ..openapi import describe

routes = web.RouteTableDef()


@routes.get("/metrics")
@requires(Role.viewer)
@describe("This process's figures in Prometheus' text format: import bytes and rows, batch commit "
          "time, open SSE streams, event-loop lag, pool use, uploads in progress; with a read "
          "standby, its replication lag and where customer reads went",
          responses={200: "text/plain; version=0.0.4"})
async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[metrics_key].exposition(),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})
