from aiohttp import web

from ..db import ping
from ..keys import pool_key

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    if await ping(request.app[pool_key]):
        return web.json_response({"status": "ok"})
    return web.json_response({"status": "database unavailable"}, status=503)
