"""A small Server-Sent Events reader for tests: events as the browser would see them."""
from __future__ import annotations

import asyncio
import dataclasses
import json

import aiohttp


@dataclasses.dataclass
class SseEvent:
    event: str
    id: str | None
    data: str

    @property
    def job(self) -> dict:
        return json.loads(self.data)

    @property
    def seq(self) -> int:
        return int(self.id)


class SseStream:
    """Reads one text/event-stream response, event by event (comments skipped, counted)."""

    def __init__(self, response: aiohttp.ClientResponse):
        self.response = response
        self.pings = 0

    async def next(self, timeout: float = 10) -> SseEvent:
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self) -> SseEvent:
        fields: dict[str, list[str]] = {}
        while True:
            raw = await self.response.content.readline()
            if not raw:
                raise EOFError("the server ended the stream")
            line = raw.decode("utf-8").rstrip("\r\n")
            if line == "":
                if fields:
                    return SseEvent(event=fields.get("event", ["message"])[-1],
                                    id=fields.get("id", [None])[-1], data="\n".join(fields.get("data", [])))
                continue
            if line.startswith(":"):
                self.pings += 1
                continue
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value[1:] if value.startswith(" ") else value)

    async def until(self, predicate, timeout: float = 30) -> list[SseEvent]:
        """Every event up to and including the first that satisfies predicate."""
        seen = []
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"no matching event within {timeout}s; saw {[(e.event, e.data[:80]) for e in seen]}")
            event = await self.next(left)
            seen.append(event)
            if predicate(event):
                return seen


async def open_stream(session, url: str, last_event_id: str | None = None):
    """GET an event stream; the caller closes the returned response."""
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    response = await session.get(url, headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return SseStream(response)
