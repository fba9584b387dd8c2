"""Streaming CSV downloads (aiocsv), safe to open in a spreadsheet.

A cell that starts with = + - @ or a tab or carriage return is run as a
formula by spreadsheet programs; following OWASP's CSV-injection advice such
a cell is prefixed with a single quote, which shows it as the text it is.

Bytes that are not text (a reject's raw line) are shown escaped, so a person
sees exactly which bytes were there: see escape_bytes.
"""
from __future__ import annotations

from collections.abc import AsyncIterable, Iterable

from aiocsv import AsyncWriter
from aiohttp import web

from .capacity import Busy, Slots
from .config import Config

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
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


class _ResponseText:
    """What aiocsv writes to: text in, UTF-8 bytes out to the client in blocks.

    One socket write per row would cost more than the rows themselves; a
    block of a few hundred KB keeps memory flat and the network busy.
    """

    def __init__(self, response: web.StreamResponse, block_chars: int = 256 * 1024):
        self.response = response
        self.block_chars = block_chars
        self.pending: list[str] = []
        self.size = 0

    async def write(self, text: str) -> None:
        self.pending.append(text)
        self.size += len(text)
        if self.size >= self.block_chars:
            await self.flush()

    async def flush(self) -> None:
        if self.pending:
            data = "".join(self.pending).encode("utf-8")
            self.pending.clear()
            self.size = 0
            await self.response.write(data)


async def stream_csv(request: web.Request, filename: str, header: Iterable[str],
                     rows: AsyncIterable[Iterable[object]]) -> web.StreamResponse:
    """Send `rows` as a CSV download, written as they are read (constant memory)."""
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{filename}"',
    })
    await response.prepare(request)
    out = _ResponseText(response)
    writer = AsyncWriter(out, lineterminator="\r\n")
    await writer.writerow(list(header))
    async for row in rows:
        await writer.writerow([neutralise(value) for value in row])
    await out.flush()
    await response.write_eof()
    return response
