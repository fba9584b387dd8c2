"""A request body on its way in: read within a pace, in buffers, and told apart from a
client that went away.

Every read of an upload's body, multipart or tus, goes through Pace.step, so
the two doors drop silence and trickles alike (408) and both see a broken
connection as ClientGone, never as a server error.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from aiohttp import StreamReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from .errors import BadUpload, ClientGone, UnsupportedUpload, UploadStalled

T = TypeVar("T")

CHUNK_BYTES = 256 * 1024
# What a body must bring in every UPLOAD_STALL_SECONDS (about 1 KB/s at the default 60 s):
# a client that trickles a byte now and then holds a slot and a file as surely as a silent one.
MIN_PACE_BYTES = 64 * 1024


class Pace:
    """What a request body must keep up: something within every `seconds`, and at least
    `min_bytes` over each such period. Silence and a trickle are both dropped (408).

    Progress is the bytes the connection has brought (`total_bytes` of the request's
    stream), whatever the reader makes of them, so part headers count as much as a file.
    """

    def __init__(self, stream: StreamReader, seconds: float, min_bytes: int = MIN_PACE_BYTES) -> None:
        self.stream = stream
        self.seconds = seconds
        self.min_bytes = min_bytes
        self._since = time.monotonic()
        self._mark = stream.total_bytes

    async def step(self, step: Awaitable[T]) -> T:
        """Await one read of the body, within the pace."""
        try:
            async with asyncio.timeout(self.seconds):
                result = await step
        except TimeoutError:
            raise UploadStalled(f"the upload sent nothing for {self.seconds:g} seconds "
                                "(UPLOAD_STALL_SECONDS) and was dropped") from None
        except ConnectionError:  # aiohttp's word for a connection lost mid-body
            raise ClientGone() from None
        now = time.monotonic()
        if now - self._since >= self.seconds:
            if self.stream.total_bytes - self._mark < self.min_bytes:
                raise UploadStalled(f"the upload sent less than {self.min_bytes} bytes in "
                                    f"{self.seconds:g} seconds (UPLOAD_STALL_SECONDS) and was dropped")
            self._since, self._mark = now, self.stream.total_bytes
        return result


class Body:
    """A raw request body in buffers of about CHUNK_BYTES: few thread hops, little memory.
    What arrived but was not handed out yet stays readable (leftover) when it is cut short."""

    def __init__(self, stream: StreamReader, stall_seconds: float) -> None:
        self.stream = stream
        self.pace = Pace(stream, stall_seconds)
        self.buffer = bytearray()

    async def buffers(self) -> AsyncIterator[bytes]:
        while True:
            try:
                piece = await self.pace.step(self.stream.read(CHUNK_BYTES))
            except HttpProcessingError:  # cut short before its Content-Length
                raise ClientGone() from None
            if not piece:
                break
            self.buffer += piece
            if len(self.buffer) >= CHUNK_BYTES:
                yield self.leftover()
        if self.buffer:
            yield self.leftover()

    def leftover(self) -> bytes:
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


def refuse_encoded(request: web.Request) -> None:
    """aiohttp would inflate a gzip body before we see it, so a small request could
    write a file a thousand times its size past every byte limit."""
    coding = request.headers.get(hdrs.CONTENT_ENCODING, "identity").strip().lower()
    if coding not in ("", "identity"):
        raise UnsupportedUpload(f"uploads are not accepted with Content-Encoding {coding!r}: send the file "
                                "as it is (a compressed .gz file is a file like any other)")


def refuse_body(request: web.Request, why: str) -> None:
    """A request that must come without a body, announced by Content-Length or sent chunked."""
    if request.body_exists:
        error = BadUpload(why)
        error.close_connection = True  # the body is not wanted: do not read it first
        raise error
