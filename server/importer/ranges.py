"""The range plan: where a file may be cut so that pipelines read its parts at once.

A cut must be a record boundary of the one reading from the top (records.py),
whatever came before it: a quoted field may hold line breaks, and a stray quote
makes the reader reject one line and go on at the next. Global quote parity (as
timescaledb-parallel-copy and DuckDB assume) is not enough for that second rule,
so a cut is found by the reader itself, near the cut only:

- A record that spans line breaks starts at a line with an odd number of
  quotes and reaches at most to the next such line (or MAX_RECORD_BYTES).
- So, from any line start Q1, the reader from the top is, at Q1, either at a
  record boundary, or inside a record that ends at or before the end of the
  first odd line O after Q1; in the first case it reads on as a reader started
  at Q1 does, in the second as one started after O does (or one started at Q1,
  when the record ends before O: the lines between are single records).
- A place where both of those readers start a record is a boundary of the
  reader from the top too. With no odd line within MAX_RECORD_BYTES after Q1,
  any line start past that distance is one.

Runs in a parse worker process; reads a few windows near each cut, not the file.
"""
from __future__ import annotations

from pathlib import Path

from .header import Header
from .records import BatchBuilder

_FIRST_WINDOW = 256 * 1024
_COUNT_CHUNK = 8 * 1024 * 1024


def plan_cuts(path: Path, header: Header, start: int, size: int, count: int, max_record_bytes: int) -> list[int]:
    """Up to count - 1 offsets, ascending, between start and size, each a record boundary."""
    cuts: list[int] = []
    with open(path, "rb") as f:
        for i in range(1, count):
            target = start + (size - start) * i // count
            if cuts and target <= cuts[-1]:
                continue
            cut = _cut_after(f, header, target, size, max_record_bytes)
            if cut is not None and (not cuts or cut > cuts[-1]) and start < cut < size:
                cuts.append(cut)
    return cuts


def count_lines(path: Path, start: int, end: int) -> int:
    """The line ends (LF) in [start, end): a range's first line number is its lead's plus these."""
    lines = 0
    with open(path, "rb") as f:
        f.seek(start)
        left = end - start
        while left > 0 and (chunk := f.read(min(_COUNT_CHUNK, left))):
            lines += chunk.count(b"\n")
            left -= len(chunk)
    return lines


def _cut_after(f, header: Header, target: int, size: int, limit: int) -> int | None:
    window = _FIRST_WINDOW
    while True:
        f.seek(target)
        data = f.read(window)
        eof = target + len(data) >= size
        first = data.find(b"\n") + 1
        if first == 0:
            return None
        cut = _common_start(header, data, target, first, limit, eof)
        if cut is not None or eof or window > 4 * limit + _FIRST_WINDOW:
            return cut
        window *= 4


def _common_start(header: Header, data: bytes, base: int, first: int, limit: int, eof: bool) -> int | None:
    """The first record start common to a reader from data[first:] and one from after its first odd line."""
    at = first
    odd_end = None
    while at < len(data):
        end = data.find(b"\n", at) + 1
        if end == 0:
            break
        if data.count(b'"', at, end) % 2:
            odd_end = end
            break
        if end - first > limit:
            return base + end  # no odd line within the limit: every record before here has ended
        at = end
    if odd_end is None:
        return None
    one = _record_starts(header, data[first:], base + first, limit, eof)
    two = _record_starts(header, data[odd_end:], base + odd_end, limit, eof)
    common = sorted(one & two)
    return common[0] if common else None


def _record_starts(header: Header, data: bytes, offset: int, limit: int, eof: bool) -> set[int]:
    """Where the reader started at `offset` starts each record it decides within `data`."""
    builder = BatchBuilder(header, offset, 0, max_record_bytes=limit, max_rows=1 << 40, max_rejects=1 << 40,
                           job_id=0)
    starts: set[int] = set()
    take_line, take_quoted = builder._take_line, builder._take_quoted

    def line(raw, size):
        starts.add(builder.offset)
        take_line(raw, size)

    def quoted(pieces, first, remaining, at_eof):
        at = builder.offset
        taken = take_quoted(pieces, first, remaining, at_eof)
        if taken:
            starts.add(at)
        return taken

    builder._take_line = line  # type: ignore[method-assign]
    builder._take_quoted = quoted  # type: ignore[method-assign]
    builder.build(data, eof)
    return starts
