from aiohttp import web

from ..db import ping
from ..auth.roles import public
from ..errors import DATABASE_RETRY_AFTER
from ..keys import lag_key, pool_key
from ..openapi import describe

routes = web.RouteTableDef()


@routes.get("/healthz")
@public
@describe("200 when the database answers; also how late the event loop runs (p50/p99, ms; over the "
          "last ?lag_seconds=N seconds, else about the last minute)",
          responses={200: "healthy", 503: "the database does not answer"})
async def healthz(request: web.Request) -> web.Response:
    if await ping(request.app[pool_key]):
        last = _lag_seconds(request.query.get("lag_seconds"))
        return web.json_response({"status": "ok", "loop_lag_ms": request.app[lag_key].percentiles(last)})
    return web.json_response({"status": "database unavailable"}, status=503,
                             headers={"Retry-After": str(DATABASE_RETRY_AFTER)})


def _lag_seconds(raw: str | None) -> float | None:
    try:
        seconds = float(raw) if raw else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 < seconds < 3600 else None
