"""How long a client may take to send a request, as a front server (nginx) bounds it.

- The request head: aiohttp closes a connection whose head is not complete within
  its keep-alive timeout, counted from the connection's start or its last answer
  (and not reset by a byte that trickles in). `serve` sets that timeout to
  REQUEST_HEADER_TIMEOUT_SECONDS, which also bounds an idle keep-alive connection.
- The body: aiohttp has no timeout on it. Bodies other than uploads are small
  (the app's client_max_size, 1 MiB), so they are read in full, within
  REQUEST_BODY_TIMEOUT_SECONDS, before the handler runs; a body that has not
  arrived by then gets 408 and the connection is closed. Uploads (multipart
  forms, tus PATCH bodies) stream to disk under their own pace
  (UPLOAD_STALL_SECONDS), so they are left to their handlers.
"""
from __future__ import annotations

import asyncio

from aiohttp import web

from .errors import DomainError
from .keys import config_key

STREAMED_BODIES = frozenset({"multipart/form-data", "application/offset+octet-stream"})


class BodyTooSlow(DomainError):
    status = 408
    close_connection = True


@web.middleware
async def body_deadline_middleware(request: web.Request, handler) -> web.StreamResponse:
    if request.body_exists and request.content_type not in STREAMED_BODIES:
        seconds = request.app[config_key].request_body_timeout_seconds
        try:
            async with asyncio.timeout(seconds):
                await request.read()  # kept by the request: the handler reads it again from memory
        except TimeoutError:
            return await _answer_and_close(request, BodyTooSlow(
                f"the request body did not arrive within {seconds:g} seconds (REQUEST_BODY_TIMEOUT_SECONDS)"))
    return await handler(request)


async def _answer_and_close(request: web.Request, error: BodyTooSlow) -> web.StreamResponse:
    """The 408, then the connection closed at once. aiohttp would otherwise linger for
    the rest of the body (up to 10 s), which is right for a client still sending but
    not for one whose body has stopped coming: the connection would stay open."""
    response = web.json_response(error.body(), status=error.status, headers=error.headers())
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    if request.protocol is not None:
        request.protocol.force_close()  # after the answer is written: the transport sends it first
    return response
