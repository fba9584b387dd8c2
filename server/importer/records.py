"""The record parser: one window of a CSV file -> the records in it (a Batch), each physical
line accounted for once.

The rules (docs/parsing.md says why):

- A physical line ends at LF. A CR right before the LF belongs to the line
  end; any other CR is a character: data inside quotes, and outside quotes it
  rejects its record whole.
- A line without quotes is one record: its fields lie between the commas.
- A line with an even number of quotes closes on itself. A line with an odd
  number opens a record that, by RFC 4180, can only close at the next line
  with an odd number; Python's csv module reads the record from those lines.
  When it cannot (a stray quote), or the record would run past
  MAX_RECORD_BYTES, the first line alone is rejected and reading goes on at
  the next line. Each line is read at most twice, so the cost is linear
  whatever the quotes.
- Every line ends in exactly one place: an accepted record, a reject (whose
  raw bytes are exactly its lines), or the count of skipped blank lines.
"""
from __future__ import annotations

import csv
import hashlib
import operator
from collections import deque
from collections.abc import Callable

from ..fields import CHECKED, CUSTOMER_ID, FORMAT_CHECKS, SUBSCRIPTION_DATE
from . import dates
from .batch import Batch
from .header import CUSTOMER_COLUMNS, Header, first_line, read_records_up_to

RECENT_ROWS = 20
NULL = "\\N"  # COPY's text format for NULL
# What the export's formula guard (server/csvout.py) puts a quote before; the
# parser takes the quote off again, so that a download imports back as it was.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
BARE_CR = "a carriage return (CR) that does not end a line, outside quotes"


class _Lines:
    """The lines of one quoted record, as csv.reader asks for them; it may not ask past `stop`."""

    __slots__ = ("pieces", "index", "stop", "exhausted", "bad_utf8")  # pieces: UTF-8, transcoded if need be

    def __init__(self, pieces: list[bytes], start: int, stop: int):
        self.pieces = pieces
        self.index = start
        self.stop = stop
        self.exhausted = False
        self.bad_utf8 = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.index >= self.stop:
            self.exhausted = True
            raise StopIteration
        raw = self.pieces[self.index]
        self.index += 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.bad_utf8 = True
            return raw.decode("utf-8", "surrogateescape")


class BatchBuilder:
    def __init__(self, header: Header, offset: int, line: int, *, max_record_bytes: int,
                 max_rows: int, max_rejects: int, job_id: int, stop: int | None = None):
        self.header = header
        self.offset = offset
        self.line = line
        self.start_line = line
        # A range's end (engine.py's plan): no record that starts there or after is taken;
        # the bytes after it are read only to decide the records before it, as one reader would.
        self.stop = stop
        self.start_offset = offset
        self.max_record_bytes = max_record_bytes
        read_records_up_to(max_record_bytes)
        # A value has no more characters than its record has bytes: a limit at least the record
        # limit cannot be passed (About Customer's, by default) and costs no check.
        self.limit_groups = [(limit, texts) for limit, texts in _LIMIT_GROUPS if limit < max_record_bytes]
        self.max_rows = max_rows
        self.max_rejects = max(max_rejects, 1)
        self.job_id = str(job_id)
        # An absent column reads the empty field appended to every row, which becomes NULL.
        self.positions = [header.width if p is None else p for p in header.positions]
        self.by_id: dict[str, bytes] = {}
        self.line_of: dict[str, int] = {}  # the line each id's kept occurrence starts at (its history)
        self.repeats: dict[str, int] = {}
        self.same_repeats: dict[str, int] = {}
        self.rows = 0
        self.rejects: list[tuple[int, int, str, bytes]] = []
        self.recent: deque[tuple[int, list[str]]] = deque(maxlen=RECENT_ROWS)
        self.dates: dict[str, str | None] = {}  # as written -> ISO, or None when not a date
        self.read_date = dates.reader(header.date_format)
        self.delimiter = header.delimiter
        self.invalid_text = "not valid UTF-8" if header.codec == "utf-8" else f"not valid {header.encoding} text"
        self.sizes: list[int] | None = None  # per piece: its size in the file, when transcoded
        self.window, self.window_offset = b"", offset  # the bytes build() reads, as in the file
        self.accepted_lines = 0
        self.blank_lines = 0
        self.reached_end = False  # every line up to the end of the file taken
        self.full = False  # the row or reject bound is reached

    def build(self, data: bytes, eof: bool) -> None:
        """Take the records that can be decided from `data`, up to the batch's bounds.

        `data` starts at a record boundary; with eof it runs to the end of the file.
        """
        if self.header.codec == "utf-8":
            pieces = _lines(data)
            sizes = None
        else:
            pieces, sizes = _transcoded_lines(data, self.header.codec)
        if pieces and not pieces[-1].endswith(b"\n") and not eof:
            pieces.pop()  # a line cut by the window: the next read takes it whole
            if sizes is not None:
                sizes.pop()
        self.sizes = sizes
        self.window, self.window_offset = data, self.offset
        count = len(pieces)
        base = self.offset
        max_rows, max_rejects, rejects, take_line = self.max_rows, self.max_rejects, self.rejects, self._take_line
        stop = self.stop
        i = 0
        while i < count:
            if stop is not None and self.offset >= stop:
                self.reached_end = True
                return
            if self.rows >= max_rows or len(rejects) >= max_rejects:
                self.full = True
                return  # bounded: the next batch goes on from here
            raw = pieces[i]
            if b'"' not in raw:
                # The common case, and far faster than the csv module: no quotes, so the
                # line is one record and its fields are what lies between the commas.
                take_line(raw, len(raw) if sizes is None else sizes[i])
                i += 1
            else:
                remaining = len(data) - (self.offset - base)
                taken = self._take_quoted(pieces, i, remaining, eof)
                if taken == 0:
                    return  # the record may close past the window: the next batch starts with it
                i += taken
        self.reached_end = eof or (stop is not None and self.offset >= stop)

    @property
    def progressed(self) -> bool:
        return self.offset > self.start_offset or self.reached_end

    def batch(self) -> Batch:
        return Batch(
            start_offset=self.start_offset, end_offset=self.offset, end_line=self.line, eof=self.reached_end,
            ids=list(self.by_id), lines=list(self.by_id.values()),
            repeats=self.repeats, rejects=self.rejects, recent=self._recent_rows(),
            line_nos=[self.line_of[customer_id] for customer_id in self.by_id],
            same_repeats=self.same_repeats, accepted_lines=self.accepted_lines, blank_lines=self.blank_lines,
            start_line=self.start_line, digests=digests(self.by_id.values(), len(self.job_id)),
        )

    def reject_long_line(self, head: bytes, length: int) -> None:
        """A line longer than MAX_RECORD_BYTES: rejected whole; its first bytes show what it was."""
        self.sizes = None  # `head` is the file's own bytes
        self._reject(head, f"line longer than {self.max_record_bytes} bytes", length=length)

    # -- one record each ------------------------------------------------------------------

    def _take_line(self, raw: bytes, size: int) -> None:
        if len(raw) > self.max_record_bytes:
            self._reject(raw[:self.max_record_bytes], f"line longer than {self.max_record_bytes} bytes",
                         length=size)
            return
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self._take(None, raw, 1, self.invalid_text, size)
            return
        if "\r" in text and not (text.endswith("\r\n") and text.count("\r") == 1):
            self._take(None, raw, 1, BARE_CR, size)
            return
        # The line end stays in the last field, whose value is trimmed like every other.
        self._take(text.split(self.delimiter) if text.strip("\r\n") else [], raw, 1, None, size)

    def _original(self, raw: bytes, offset: int, size: int) -> bytes:
        """A reject's bytes as they are in the file (`raw` may be transcoded, or a long line's head)."""
        if self.sizes is None:
            return raw
        start = offset - self.window_offset
        return self.window[start:start + min(size, self.max_record_bytes)]

    def _size(self, pieces: list[bytes], first: int, count: int) -> int:
        """The bytes in the file of pieces[first:first + count]."""
        if self.sizes is None:
            return sum(len(piece) for piece in pieces[first:first + count])
        return sum(self.sizes[first:first + count])

    def _take_quoted(self, pieces: list[bytes], first: int, remaining: int, eof: bool) -> int:
        """Read the record that starts at pieces[first]; the number of lines taken (0: undecided)."""
        limit = self.max_record_bytes
        size = len(pieces[first])
        if size > limit:
            self._take_line(pieces[first], self._size(pieces, first, 1))
            return 1
        # The reach of the record: up to where RFC 4180 lets it close (here, with an even
        # number of quotes, else the next line with an odd number), within the limit.
        stop = first + 1
        closed = pieces[first].count(b'"') % 2 == 0
        while not closed and stop < len(pieces) and size + len(pieces[stop]) <= limit:
            size += len(pieces[stop])
            closed = pieces[stop].count(b'"') % 2 == 1
            stop += 1
        at_end = stop == len(pieces)
        if not closed and at_end and not eof and remaining <= limit:
            return 0  # the reach may go on past the window
        lines = _Lines(pieces, first, stop)
        row: list[str] | None
        error = None
        try:
            row = next(csv.reader(lines, delimiter=self.delimiter))
        except csv.Error as exc:
            row, error = None, f"malformed CSV: {exc}"
        taken = lines.index - first
        if lines.exhausted:
            # The quoted field does not close within its reach: a stray quote. Its line alone
            # is rejected; the lines after it are read again as records of their own.
            if closed:
                reason = "does not close where the record should end"
            elif at_end and eof:
                reason = "never closes"
            else:
                reason = f"does not close within {limit} bytes"
            self._reject(pieces[first], f"malformed CSV: a quote on this line {reason}",
                         length=self._size(pieces, first, 1))
            return 1
        if taken > 1 and (error is not None or row is None or len(row) != self.header.width):
            self._reject(pieces[first], "malformed CSV: a quote on this line does not close where the "
                         f"record should end (the quoted record would have "
                         f"{'?' if row is None else len(row)} fields, not {self.header.width})",
                         length=self._size(pieces, first, 1))
            return 1
        raw = pieces[first] if taken == 1 else b"".join(pieces[first:first + taken])
        if lines.bad_utf8:
            error = error or self.invalid_text
        self._take(row, raw, taken, error, self._size(pieces, first, taken))
        return taken

    def _reject(self, raw: bytes, reason: str, *, length: int) -> None:
        """A one-line reject; `raw` may be the start of a line too long to keep whole."""
        self.rejects.append((self.line, self.offset, reason, self._original(raw, self.offset, length)))
        self.offset += length
        self.line += 1

    def _take(self, row: list[str] | None, raw: bytes, lines: int, error: str | None, size: int) -> None:
        line, offset = self.line, self.offset
        self.offset += size
        self.line += lines
        if b"\x00" in raw:
            error = "the row holds a NUL byte"
        elif error is None:
            if not row:
                self.blank_lines += lines  # an empty line: skipped, not counted as a row
                return
            if len(row) != self.header.width:
                error = f"expected {self.header.width} fields, found {len(row)}"
            else:
                row.append("")
                values = [row[p].strip() or NULL for p in self.positions]
                if b"'" in raw:
                    values = [unguard(v) for v in values]
                error = self._invalid(values)
        if error is not None:
            self.rejects.append((line, offset, error, self._original(raw, offset, size)))
            return
        self.rows += 1
        self.accepted_lines += lines
        customer_id = values[CUSTOMER_ID]
        # Popped and put back: the dict keeps the file order of last occurrences.
        previous = self.by_id.pop(customer_id, None)
        values.append(self.job_id)
        if _needs_escapes(raw, lines):
            copy_line = "\t".join([v if v is NULL else v.translate(_COPY_ESCAPES) for v in values])
        else:
            copy_line = "\t".join(values)
        # Encoded here, in the worker process, so the server's threads only join bytes.
        encoded = (copy_line + "\n").encode("utf-8")
        if previous is not None:
            self.repeats[customer_id] = self.repeats.get(customer_id, 0) + 1
            if previous == encoded:
                self.same_repeats[customer_id] = self.same_repeats.get(customer_id, 0) + 1
        self.by_id[customer_id] = encoded
        self.line_of[customer_id] = line
        self.recent.append((line, values))

    def _invalid(self, values: list[str]) -> str | None:
        if values[CUSTOMER_ID] is NULL:
            return "Customer Id is empty"
        # The API's own checks (server/fields.py). Per row, C loops only: the longest value of
        # each group of fields that share a limit, then the formats; the words, when a value
        # fails, come from the fields' own check.
        for limit, texts in self.limit_groups:
            if max(map(len, texts(values))) > limit:
                return _field_problem(values)
        for position, check in _FORMATS:
            value = values[position]
            if value is not NULL and not check(value):
                return _field_problem(values)
        day = values[SUBSCRIPTION_DATE]
        if day is not NULL:
            try:
                iso = self.dates[day]
            except KeyError:
                iso = self.dates[day] = self.read_date(day)
            if iso is None:
                return f"Subscription Date {day[:40]!r} {dates.problem(self.header.date_format, day)}"
            values[SUBSCRIPTION_DATE] = iso
        return None

    def _recent_rows(self) -> list[dict]:
        rows = []
        for line, values in self.recent:
            row: dict[str, str | int | None] = {c: (None if v is NULL else v) for c, v in zip(CUSTOMER_COLUMNS, values)}
            row["about"] = str(row["about"] or "")[:200] or None
            row["line_no"] = line
            rows.append(row)
        return rows


def _limit_groups() -> list[tuple[int, Callable[[list[str]], tuple[str, ...]]]]:
    by_limit: dict[int, list[int]] = {}
    for position, limit, _, _ in CHECKED:
        by_limit.setdefault(limit, []).append(position)
    # itemgetter of one position gives the value, not a tuple of one: a second getter keeps it a tuple.
    return [(limit, operator.itemgetter(*positions, *positions[:1])) for limit, positions in by_limit.items()]


_LIMIT_GROUPS = _limit_groups()
_FORMATS = [(position, FORMAT_CHECKS[field.format]) for position, _, _, field in CHECKED if field.format is not None]


def _field_problem(values: list[str]) -> str:
    """The first field whose check a row's values fail, in words (the slow path: rejects only)."""
    for position, _, _, field in CHECKED:
        if values[position] is not NULL and (problem := field.problem(values[position])) is not None:
            return f"{field.label} {problem}"
    raise AssertionError("a field check failed and Field.problem names none")


def _lines(data: bytes) -> list[bytes]:
    """The physical lines of `data`, each with its LF: only LF ends a line."""
    if data.count(b"\r") == data.count(b"\r\n"):
        return data.splitlines(keepends=True)  # the same here, and faster
    pieces = data.split(b"\n")
    tail = pieces.pop()
    pieces = [piece + b"\n" for piece in pieces]
    if tail:
        pieces.append(tail)
    return pieces


def _transcoded_lines(data: bytes, codec: str) -> tuple[list[bytes], list[int]]:
    """The physical lines of `data` in `codec`, as UTF-8, and the size of each in the file.

    A byte that is no text in `codec` stays as it was, so that the line is
    rejected as not valid text and its raw bytes show where.
    """
    if codec.startswith("utf-16"):
        found = []
        start = 0
        while start < len(data):
            end = first_line(data, start, codec)
            end = len(data) if end < 0 else end
            found.append(data[start:end])
            start = end
    else:  # one byte a character: its line ends are the bytes' own
        found = _lines(data)
    pieces = [piece.decode(codec, "surrogateescape").encode("utf-8", "surrogateescape") for piece in found]
    return pieces, [len(piece) for piece in found]


def digests(lines, job_id_length: int) -> list[int]:
    """customers.import_digest of each COPY line: its values, without the job's id that ends it."""
    tail = job_id_length + 2  # "\t<job id>\n"
    return [int.from_bytes(hashlib.sha256(memoryview(line)[:-tail]).digest()[:8], "big", signed=True)
            for line in lines]


def unguard(value: str) -> str:
    """'+1-555 -> +1-555: the export's formula guard, taken off (docs/parsing.md)."""
    if value.startswith("'") and value[1:2] and value[1:].startswith(FORMULA_START):
        return value[1:]
    return value


def _needs_escapes(raw: bytes, lines: int) -> bool:
    """Whether a value of this record holds a character COPY's text format must escape."""
    if lines > 1 or b"\\" in raw or b"\t" in raw:
        return True
    ends = 2 if raw.endswith(b"\r\n") else 1 if raw.endswith(b"\n") else 0
    return raw.count(b"\r") > (ends == 2)
