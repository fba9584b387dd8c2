from aiohttp import web

from ..db import ping
from ..errors import DATABASE_RETRY_AFTER
from ..keys import lag_key, pool_key
from ..openapi import describe

routes = web.RouteTableDef()


@routes.get("/healthz")
@describe("200 when the database answers; also how late the event loop runs (p50/p99, ms)",
          responses={200: "healthy", 503: "the database does not answer"})
async def healthz(request: web.Request) -> web.Response:
    if await ping(request.app[pool_key]):
        return web.json_response({"status": "ok", "loop_lag_ms": request.app[lag_key].percentiles()})
    return web.json_response({"status": "database unavailable"}, status=503,
                             headers={"Retry-After": str(DATABASE_RETRY_AFTER)})
