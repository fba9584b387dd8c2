"""Streaming CSV downloads, formatted off the loop, safe to open in a spreadsheet.

A cell that starts with = + - @ or a tab or carriage return is run as a
formula by spreadsheet programs; following OWASP's CSV-injection advice such
a cell is prefixed with a single quote, which shows it as the text it is.

Bytes that are not text (a reject's raw line) are shown escaped, so a person
sees exactly which bytes were there: see escape_bytes.

aiocsv's AsyncWriter writes the rows: the standard csv module's quoting, into
an asynchronous file, which here is the HTTP response (in blocks).
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Iterable, Sequence
from datetime import date, datetime

from aiocsv import AsyncWriter
from aiohttp import web

from .capacity import Busy, Slots
from .config import Config

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
SLICE_ROWS = 50  # rows formatted in one go: ~50 KB, a few ms of the loop
BLOCK_BYTES = 256 * 1024
# C0 controls but tab, LF and CR (CSV quoting carries those), and DEL.
_CONTROL_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F)}


def slots(config: Config) -> Slots:
    """This process's download slots (EXPORTS_MAX_CONCURRENT)."""
    return Slots(config.exports_max_concurrent, lambda limit: Busy(
        f"{limit} downloads are already in progress on this server (EXPORTS_MAX_CONCURRENT); "
        "try again shortly", retry_after=10))


def escape_bytes(raw: bytes) -> str:
    """`raw` as readable, unambiguous text, one rule for every byte.

    Valid UTF-8 stays as it is; a byte that is not valid UTF-8, a NUL or
    another control character (but tab, LF and CR) becomes `\\xNN`, as in
    Python and C; a backslash itself is doubled, so `\\xff` written in the
    file and a real 0xFF byte never look alike.
    """
    text = raw.replace(b"\\", b"\\\\").decode("utf-8", errors="backslashreplace")
    return text.translate(_CONTROL_ESCAPES)


def neutralise(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


async def stream_csv(request: web.Request, filename: str, header: Iterable[str],
                     rows: AsyncIterable[Sequence[object]]) -> web.StreamResponse:
    """Send `rows` as a CSV download, written as they are read (constant memory).

    The first rows are read before the 200 goes out, so a failure to start
    (the database away, a bad query) is still an HTTP answer, not a cut file.
    Rows become CSV on the loop in slices of SLICE_ROWS, each followed by a
    yield: a few milliseconds at a time, so other requests (and other
    downloads) take turns. A thread would not help: formatting is Python
    work, and a thread holding the GIL delays the loop all the same.
    """
    it = aiter(rows)
    first = await anext(it, None)
    response = await _download(request, filename)
    out = _Blocks(response)
    writer = AsyncWriter(out, lineterminator="\r\n")
    slice_: list[Sequence[object]] = [list(header)]
    if first is not None:
        slice_.append(first)
        async for row in it:
            slice_.append(row)
            if len(slice_) >= SLICE_ROWS:
                await writer.writerows(_cells(slice_))
                slice_ = []
                await asyncio.sleep(0)  # the slice's turn is over
    await writer.writerows(_cells(slice_))
    await out.flush()
    await response.write_eof()
    return response


class _Blocks:
    """The text aiocsv writes, out to the client as UTF-8 in blocks of about
    BLOCK_BYTES: one socket write per slice would cost more than the slices."""

    def __init__(self, response: web.StreamResponse):
        self.response = response
        self.pending: list[bytes] = []
        self.size = 0

    async def write(self, text: str) -> None:
        data = text.encode("utf-8")
        self.pending.append(data)
        self.size += len(data)
        if self.size >= BLOCK_BYTES:
            await self.flush()

    async def flush(self) -> None:
        if self.pending:
            data = b"".join(self.pending)
            self.pending.clear()
            self.size = 0
            await self.response.write(data)


def _cells(rows: list[Sequence[object]]) -> Iterable[list[object]]:
    return ([_cell(value) for value in row] for row in rows)


def _cell(value: object) -> object:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return neutralise(value)


async def stream_records(request: web.Request, filename: str, header: Sequence[str], delimiter: str,
                         records: AsyncIterable[str]) -> web.StreamResponse:
    """Send a header line and records as they were (each its own text, ended by a line break):
    a CSV file in UTF-8, in the delimiter of the file the records came from."""
    response = await _download(request, filename)
    out = _Blocks(response)
    await AsyncWriter(out, delimiter=delimiter, lineterminator="\r\n").writerow(header)
    async for text in records:
        await out.write(text if text.endswith("\n") else text + "\r\n")
    await out.flush()
    await response.write_eof()
    return response


async def _download(request: web.Request, filename: str) -> web.StreamResponse:
    """A prepared CSV download response named `filename`."""
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{filename}"',
    })
    await response.prepare(request)
    return response
