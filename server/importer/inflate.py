"""gzip files, read as a stream.

A deflate stream cannot be entered in the middle without the decoder's state,
which zlib cannot save, so a resumed gzip job inflates the file again from its
start and skips the lines its checkpoint counted (docs/files.md has the
figures). Within a run the parse worker keeps one open stream per job and
reads it forward, batch after batch.
"""
from __future__ import annotations

import gzip
import zlib

from .refusals import BrokenGzip

MAGIC = b"\x1f\x8b"
_CHUNK = 1024 * 1024


def _broken(exc: Exception) -> BrokenGzip:
    if isinstance(exc, EOFError):
        return BrokenGzip("the gzip file is cut off: it ends before the end of its compressed data "
                          "(an upload or copy that did not finish?); send the whole file again")
    return BrokenGzip(f"the gzip file is damaged and cannot be inflated ({exc}); send an intact copy")


_GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


def is_gzip(path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == MAGIC


def head(data: bytes, limit: int) -> bytes:
    """The first `limit` inflated bytes of a file whose first bytes are `data` (as they are if not gzip)."""
    if not data.startswith(MAGIC):
        return data
    try:
        return zlib.decompressobj(wbits=31).decompress(data, limit)
    except zlib.error as exc:
        raise _broken(exc) from None


def read_head(path, limit: int) -> bytes:
    with open(path, "rb") as f:
        if f.read(2) != MAGIC:
            f.seek(0)
            return f.read(limit)
        f.seek(0)
        with gzip.GzipFile(fileobj=f) as gz:
            try:
                return gz.read(limit)
            except _GZIP_ERRORS as exc:
                raise _broken(exc) from None


class Inflated:
    """A gzip file's bytes, uncompressed, read like a file that can go back to where a batch began.

    seek() before the bytes still held starts the inflating over from the top.
    """

    def __init__(self, path):
        self.path = path
        self.raw = None
        self._restart()

    def _restart(self) -> None:
        self.close()
        self.raw = open(self.path, "rb")
        self.gz = gzip.GzipFile(fileobj=self.raw)
        self.base = 0          # uncompressed offset of buf[0]
        self.buf = bytearray()
        self.pos = 0

    def close(self) -> None:
        if self.raw is not None:
            self.raw.close()

    def forget_before(self, offset: int) -> None:
        """No seek will go before `offset` again: the bytes before it may go."""
        if offset > self.base:
            drop = min(offset - self.base, len(self.buf))
            del self.buf[:drop]
            self.base += drop

    def seek(self, offset: int) -> None:
        if offset < self.base:
            self._restart()
        self.pos = offset

    def read(self, size: int) -> bytes:
        try:
            return self._read(size)
        except _GZIP_ERRORS as exc:
            raise _broken(exc) from None

    def _read(self, size: int) -> bytes:
        if self.pos > self.base + len(self.buf):  # forward past what is held: inflate and let it go
            self.base += len(self.buf)
            self.buf.clear()
            while self.base < self.pos:
                chunk = self.gz.read(min(_CHUNK, self.pos - self.base))
                if not chunk:
                    return b""
                self.base += len(chunk)
        end = self.pos + size
        while self.base + len(self.buf) < end:
            chunk = self.gz.read(max(_CHUNK, end - self.base - len(self.buf)))
            if not chunk:
                break
            self.buf += chunk
        start = self.pos - self.base
        data = bytes(self.buf[start:start + size])
        self.pos += len(data)
        return data

    def compressed_position(self) -> int:
        """How far into the file the inflating has read (with read-ahead)."""
        assert self.raw is not None, "the file is open while it is read"
        return self.raw.tell()

    def skip_lines(self, start: int, count: int, line_end, byte_lines: bool = True) -> int:
        """The offset just past the `count`-th line end from `start` (line_end(data, at) -> end or -1;
        byte_lines: a line ends at each LF byte, as in every encoding but UTF-16)."""
        self.seek(start)
        offset = start
        while count > 0:
            data = self.read(_CHUNK)
            if not data:
                break
            at = 0
            if byte_lines and data.count(b"\n") < count:
                count -= data.count(b"\n")  # the common case: no line end needs finding one by one
                at = len(data)
            while count > 0 and at < len(data):
                end = line_end(data, at)
                if end < 0:
                    break
                at, count = end, count - 1
            if count == 0:
                offset += at
                break
            offset += len(data)
            self.seek(offset)
            self.forget_before(offset)
        self.seek(offset)
        self.forget_before(offset)
        return offset
