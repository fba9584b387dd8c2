"""/customers: read, search, edit and export customers."""
from aiohttp import web

routes = web.RouteTableDef()
