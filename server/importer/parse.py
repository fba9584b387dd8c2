"""Turns a byte range of a CSV file into rows ready for COPY, with exact offsets.

Runs in a worker process, so its CPU never touches the server's event loop.
Python's csv module does the RFC 4180 work; we feed it one physical line at a
time and watch which lines it consumed for each record, which gives every
record's exact byte offset (aiocsv reads a stream and cannot say where a
record started).
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import re
import threading
import time
from collections import deque
from datetime import date
from pathlib import Path

# The columns of the customers table that a file can fill, in COPY order.
CUSTOMER_COLUMNS = (
    "customer_id", "first_name", "last_name", "company", "city", "country",
    "phone_1", "phone_2", "email", "subscription_date", "website", "about",
)
# Normalised header name -> column. None: known, deliberately not stored.
HEADER_NAMES = {
    "index": None,
    "customerid": "customer_id",
    "firstname": "first_name",
    "lastname": "last_name",
    "company": "company",
    "city": "city",
    "country": "country",
    "phone1": "phone_1",
    "phone2": "phone_2",
    "email": "email",
    "subscriptiondate": "subscription_date",
    "website": "website",
    "aboutcustomer": "about",
    "about": "about",
}
RECENT_ROWS = 20
MAX_CUSTOMER_ID = 64
BOM = b"\xef\xbb\xbf"
_NOT_NAME_CHARS = re.compile(r"[\s_\-]+")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Sampled, not whole-file: a 10 GB file must not be read twice to resume it.
_FINGERPRINT_SAMPLE = 1024 * 1024


class FileRejected(Exception):
    """The file as a whole cannot be imported; the message says why."""


@dataclasses.dataclass(frozen=True)
class Header:
    columns: tuple[str, ...]              # as written in the file
    positions: tuple[int | None, ...]     # per CUSTOMER_COLUMNS: field index, or None when absent
    present: tuple[str, ...]              # the customer columns the file has
    unknown: tuple[str, ...]
    data_offset: int                      # first byte after the header
    data_line: int                        # physical line number of that byte

    @property
    def width(self) -> int:
        return len(self.columns)


@dataclasses.dataclass
class Batch:
    start_offset: int
    end_offset: int                # first byte after the last complete record
    end_line: int                  # physical line number at end_offset
    eof: bool
    ids: list[str]                 # one per distinct Customer Id, last occurrence wins
    lines: list[bytes]             # COPY text-format lines (UTF-8), parallel to ids
    repeats: dict[str, int]        # Customer Id -> occurrences beyond the first, in this batch
    rejects: list[tuple[int, int, str, bytes]]  # line_no, byte_offset, reason, raw
    recent: list[dict]

    @property
    def accepted(self) -> int:
        return len(self.ids) + sum(self.repeats.values())


def exit_with_parent(parent_pid: int) -> None:
    """Worker-process initializer: a parse worker never outlives the server that started it.

    A server killed with SIGKILL cannot shut its pool down, and the worker,
    blocked on its task queue, would otherwise wait for work forever.
    """
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def normalise_name(name: str) -> str:
    return _NOT_NAME_CHARS.sub("", name).lower()


def fingerprint(path: Path) -> dict:
    """What identifies this file's content well enough to resume it safely."""
    with open(path, "rb") as f:
        stat = os.fstat(f.fileno())
        head = hashlib.sha256(f.read(_FINGERPRINT_SAMPLE)).hexdigest()
        f.seek(max(stat.st_size - _FINGERPRINT_SAMPLE, 0))
        tail = hashlib.sha256(f.read(_FINGERPRINT_SAMPLE)).hexdigest()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "head": head, "tail": tail}


class NotCsvText(FileRejected):
    """Not text a CSV file is made of (binary, not UTF-8, no line breaks)."""


def read_header(path: Path, max_record_bytes: int) -> Header:
    with open(path, "rb") as f:
        return parse_header(f.read(max_record_bytes), max_record_bytes)


def parse_header(data: bytes, max_record_bytes: int) -> Header:
    """The header from the first bytes of a file; FileRejected says why it cannot be imported."""
    offset = len(BOM) if data.startswith(BOM) else 0
    line_end = data.find(b"\n", offset)
    if line_end < 0:
        if len(data) >= max_record_bytes:
            raise NotCsvText(f"this is not a CSV file: no line break in its first {max_record_bytes} bytes")
        line_end = len(data) - 1
    raw = data[offset:line_end + 1]
    if b"\x00" in raw:
        raise NotCsvText("this is not a CSV file: its first line holds NUL bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NotCsvText("this is not a CSV file: its first line is not UTF-8 text") from None
    if not text.strip():
        raise FileRejected("the file is empty" if not data else "the first line (the header) is empty")
    columns = tuple(next(csv.reader([text]), []))
    return _map_header(columns, data_offset=line_end + 1)


def _map_header(columns: tuple[str, ...], data_offset: int) -> Header:
    positions: dict[str, int] = {}
    unknown = []
    for index, name in enumerate(columns):
        key = normalise_name(name)
        if key not in HEADER_NAMES:
            unknown.append(name.strip())
            continue
        column = HEADER_NAMES[key]
        if column is None:
            continue
        if column in positions:
            raise FileRejected(f"the header has the column {column!r} twice")
        positions[column] = index
    if "customer_id" not in positions:
        raise FileRejected("the header has no 'Customer Id' column, which is required")
    return Header(
        columns=columns,
        positions=tuple(positions.get(c) for c in CUSTOMER_COLUMNS),
        present=tuple(c for c in CUSTOMER_COLUMNS if c in positions),
        unknown=tuple(unknown),
        data_offset=data_offset,
        data_line=2,
    )


def parse_batch(path: Path, header: Header, start_offset: int, start_line: int, *,
                batch_bytes: int, max_record_bytes: int, job_id: int, file_size: int) -> Batch:
    """Parse the complete records that start in [start_offset, start_offset + batch_bytes)."""
    csv.field_size_limit(max_record_bytes)
    size = batch_bytes
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size != file_size:
            raise FileRejected(f"the file changed while it was being imported (it was {file_size} bytes, "
                               f"now {os.fstat(f.fileno()).st_size}); start a new import for the new file")
        while True:
            f.seek(start_offset)
            data = f.read(size)
            eof = len(data) < size
            pieces = data.splitlines(keepends=True)
            if not eof and pieces and not pieces[-1].endswith(b"\n"):
                pieces.pop()  # cut mid-line: the next batch reads it whole
            batch = _BatchBuilder(header, start_offset, start_line, max_record_bytes, job_id).build(pieces, eof)
            if batch.end_offset > start_offset or eof:
                return batch
            # No complete record in reach: one longer than a batch. Read on, up to the limit.
            if size > max_record_bytes:
                raise FileRejected(f"line {start_line} runs past {max_record_bytes} bytes without "
                                   "a line break: this does not look like a CSV file")
            size *= 2


NULL = "\\N"  # COPY's text format for NULL
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


class _Lines:
    """The lines csv.reader reads, from a cursor the batch builder moves too.

    The builder takes quote-free lines itself and hands the reader only records
    with quotes; `taken` tells which lines (so which bytes) the reader used.
    """

    def __init__(self, pieces: list[bytes]):
        self.pieces = pieces
        self.index = 0
        self.taken: list[bytes] = []
        self.bad_utf8 = False
        self.exhausted = False

    def start_record(self) -> int:
        self.taken = []
        self.bad_utf8 = False
        self.exhausted = False
        return self.index

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.index >= len(self.pieces):
            self.exhausted = True
            raise StopIteration
        raw = self.pieces[self.index]
        self.index += 1
        self.taken.append(raw)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.bad_utf8 = True
            return raw.decode("utf-8", "surrogateescape")


class _BatchBuilder:
    def __init__(self, header: Header, offset: int, line: int, max_record_bytes: int, job_id: int):
        self.header = header
        self.offset = offset
        self.line = line
        self.max_record_bytes = max_record_bytes
        self.job_id = str(job_id)
        self.start_offset = offset
        # An absent column reads the empty field appended to every row, which becomes NULL.
        self.positions = [header.width if p is None else p for p in header.positions]
        self.by_id: dict[str, bytes] = {}
        self.repeats: dict[str, int] = {}
        self.rejects: list[tuple[int, int, str, bytes]] = []
        self.recent: deque[tuple[int, list[str]]] = deque(maxlen=RECENT_ROWS)
        self.dates: dict[str, bool] = {}

    def build(self, pieces: list[bytes], eof: bool) -> Batch:
        lines = _Lines(pieces)
        reader = csv.reader(lines)
        count = len(pieces)
        while lines.index < count:
            raw = pieces[lines.index]
            if b'"' not in raw:
                # The common case, and far faster than the csv module: no quotes, so
                # the line is one record and its fields are what lies between commas.
                lines.index += 1
                self._take_line(raw)
            elif not self._take_quoted(reader, lines, eof):
                break  # the record runs past what we read: the next batch starts with it
        return Batch(
            start_offset=self.start_offset, end_offset=self.offset, end_line=self.line, eof=eof,
            ids=list(self.by_id), lines=list(self.by_id.values()),
            repeats=self.repeats, rejects=self.rejects, recent=self._recent_rows(),
        )

    def _take_line(self, raw: bytes) -> None:
        try:
            body = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            self._take(None, raw, "not valid UTF-8")
            return
        self._take(body.split(",") if body else [], raw, None)

    def _take_quoted(self, reader, lines: _Lines, eof: bool) -> bool:
        """Let the csv module read one record from the lines; False when it is incomplete."""
        first_index = lines.start_record()
        error = None
        try:
            row = next(reader)
        except csv.Error as exc:
            row, error = None, f"malformed CSV: {exc}"
        taken = lines.taken
        if lines.exhausted and not eof:
            if sum(map(len, taken)) <= self.max_record_bytes:
                return False
            # Most likely a stray quote that never closes. Reject its first line only and
            # parse on from the next, so one bad quote costs one line, not a megabyte.
            first = taken[0]
            self._take(None, first[:self.max_record_bytes],
                       f"record longer than {self.max_record_bytes} bytes (an unbalanced quote?)",
                       length=len(first))
            lines.index = first_index + 1
            return True
        if len(taken) > 1 and (error is not None or len(row) != self.header.width):
            # A record over several lines that does not parse is most likely a stray
            # quote: reject its first line and read on from the next, as lines.
            self._take(None, taken[0], "malformed CSV: a quote on this line does not close where the "
                       f"record should end (the quoted record would have "
                       f"{'?' if row is None else len(row)} fields, not {self.header.width})")
            lines.index = first_index + 1
            return True
        raw = taken[0] if len(taken) == 1 else b"".join(taken)
        if lines.exhausted and error is None and raw.count(b'"') % 2 == 1:
            error = "unterminated quoted field at the end of the file"
        if lines.bad_utf8:
            error = error or "not valid UTF-8"
        self._take(row, raw, error)
        return True

    def _take(self, row: list[str] | None, raw: bytes, error: str | None, length: int | None = None) -> None:
        line, offset = self.line, self.offset
        self.offset += len(raw) if length is None else length
        self.line += raw.count(b"\n") if length is None else 1
        if b"\x00" in raw:
            error = "the row holds a NUL byte"
        elif error is None:
            if not row:
                return  # an empty line: skipped, not counted
            if len(row) != self.header.width:
                error = f"expected {self.header.width} fields, found {len(row)}"
            else:
                row.append("")
                values = [row[p].strip() or NULL for p in self.positions]
                error = self._invalid(values)
        if error is not None:
            self.rejects.append((line, offset, error, raw))
            return
        customer_id = values[0]
        if customer_id in self.by_id:
            self.repeats[customer_id] = self.repeats.get(customer_id, 0) + 1
            del self.by_id[customer_id]  # re-insert: the dict keeps file order of last occurrences
        values.append(self.job_id)
        if _needs_escapes(raw):
            copy_line = "\t".join([v if v is NULL else v.translate(_COPY_ESCAPES) for v in values])
        else:
            copy_line = "\t".join(values)
        # Encoded here, in the worker process, so the server's threads only join bytes.
        self.by_id[customer_id] = (copy_line + "\n").encode("utf-8")
        self.recent.append((line, values))

    def _invalid(self, values: list[str]) -> str | None:
        customer_id = values[0]
        if customer_id is NULL:
            return "Customer Id is empty"
        if len(customer_id) > MAX_CUSTOMER_ID:
            return f"Customer Id is longer than {MAX_CUSTOMER_ID} characters"
        day = values[9]
        if day is not NULL:
            valid = self.dates.get(day)
            if valid is None:
                valid = self.dates[day] = _is_iso_date(day)
            if not valid:
                return f"Subscription Date {day[:40]!r} is not a YYYY-MM-DD date"
        return None

    def _recent_rows(self) -> list[dict]:
        rows = []
        for line, values in self.recent:
            row = {c: (None if v is NULL else v) for c, v in zip(CUSTOMER_COLUMNS, values)}
            row["about"] = (row["about"] or "")[:200] or None
            row["line_no"] = line
            rows.append(row)
        return rows


def _is_iso_date(text: str) -> bool:
    if not _ISO_DATE.fullmatch(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _needs_escapes(raw: bytes) -> bool:
    """Whether a value of this record holds a character COPY's text format must escape."""
    ends = 2 if raw.endswith(b"\r\n") else 1 if raw[-1:] in (b"\n", b"\r") else 0
    return b"\\" in raw or b"\t" in raw or raw.count(b"\n") + raw.count(b"\r") > ends
