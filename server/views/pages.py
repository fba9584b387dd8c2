import aiohttp_jinja2
from aiohttp import web

from .. import customers
from ..auth.middleware import principal
from ..auth.roles import Role, public, requires
from ..fields import IMPORTED
from ..keys import config_key, pool_key
from ..openapi import describe
from ..resources import resource_dir

routes = web.RouteTableDef()


@routes.get("/")
@requires(Role.viewer)
@describe("The web page: live import panel and customer list", responses={200: "text/html page"})
@aiohttp_jinja2.template("index.html")
async def index(request: web.Request) -> dict:
    user = principal(request)
    # On a phone one panel shows at a time: the import first while there is nothing to list.
    empty = not await customers.any_customers(request.app[pool_key])
    # The page shows only what the role may do; the server refuses the rest anyway.
    return {"user": user, "can_edit": user.role >= Role.editor, "can_import": user.role >= Role.admin,
            "upload_chunk_bytes": request.app[config_key].tus_page_chunk_bytes, "customer_fields": IMPORTED,
            "first_tab": "import" if empty and user.role >= Role.admin else "customers"}


@routes.get("/favicon.ico")
@public
@describe("The page's icon (browsers ask for it before anyone signs in)", responses={200: "image/x-icon"})
async def favicon(request: web.Request) -> web.FileResponse:
    return web.FileResponse(resource_dir("web_static") / "favicon.ico",
                            headers={"Content-Type": "image/x-icon", "Cache-Control": "public, max-age=86400"})
