"""A PATCH body on its way to the part file: read in buffers, written and hashed on a thread.

Each piece keeps count of what really reached the disk, and of what arrived
but was not written yet, so that a body cut short (aiohttp cancels the
handler when the client goes away) can still keep every byte it brought.
"""
from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import StreamReader
from aiohttp.http_exceptions import HttpProcessingError

from ..uploads import CHUNK_BYTES, Pace


class ClientGone(Exception):
    """The request body ended early: the client went away mid-chunk."""


class Digests:
    """Feeds each written buffer to several hashes (uploads' write takes one)."""

    def __init__(self, *digests: Any) -> None:
        self.digests = [d for d in digests if d is not None]

    def update(self, data: bytes) -> None:
        for digest in self.digests:
            digest.update(data)


class Sink:
    """The part file and its hashes, written on a thread; counts what really went to disk."""

    def __init__(self, out: Any, digests: Digests) -> None:
        self.out = out
        self.digests = digests
        self.written = 0
        self.pending: asyncio.Future | None = None

    def write(self, data: bytes) -> int:
        """Write and hash `data`; the bytes then free on the file's disk."""
        self.digests.update(data)
        self.out.write(data)
        self.written += len(data)
        disk = os.fstatvfs(self.out.fileno())
        return disk.f_bavail * disk.f_frsize  # as shutil.disk_usage counts `free`

    async def settled(self) -> None:
        """Until a write a cancellation left running on its thread has ended."""
        if self.pending is not None:
            await asyncio.wait({self.pending})


class Body:
    """The request body in buffers of about CHUNK_BYTES: few thread hops, little memory.
    What arrived but was not handed out yet stays readable (leftover) when it is cut short."""

    def __init__(self, stream: StreamReader, stall_seconds: float) -> None:
        self.stream = stream
        self.pace = Pace(stream, stall_seconds)  # silence or a trickle: 408, like a multipart upload
        self.buffer = bytearray()

    async def buffers(self) -> AsyncIterator[bytes]:
        while True:
            try:
                piece = await self.pace.step(self.stream.read(CHUNK_BYTES))
            except (ConnectionError, HttpProcessingError) as exc:  # lost, or cut short mid-length
                raise ClientGone() from exc
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


async def shielded(awaitable) -> Any:
    """Clean-up that a cancelled handler must still finish (the file must match the row)."""
    return await asyncio.shield(asyncio.ensure_future(awaitable))
