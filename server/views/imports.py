"""/import: start, follow and control import jobs."""
from aiohttp import web

routes = web.RouteTableDef()
