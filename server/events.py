"""Progress fan-out: PostgreSQL LISTEN/NOTIFY -> every SSE subscriber of this process."""
from collections.abc import AsyncIterator

from aiohttp import web


async def events_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
