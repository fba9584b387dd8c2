import aiohttp_jinja2
from aiohttp import web

from ..keys import config_key
from ..openapi import describe

routes = web.RouteTableDef()


@routes.get("/")
@describe("The web page: live import panel and customer list", responses={200: "text/html page"})
@aiohttp_jinja2.template("index.html")
async def index(request: web.Request) -> dict:
    return {"upload_chunk_bytes": request.app[config_key].tus_page_chunk_bytes}
