"""The header line of a customer CSV file: which field holds which column."""
from __future__ import annotations

import csv
import dataclasses
import re

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
BOM = b"\xef\xbb\xbf"
# What a job keeps of the header names it does not know: enough to recognise them,
# small enough that a job stays a small record whatever the file's header.
MAX_UNKNOWN_NAMES = 50
MAX_NAME_CHARS = 100
_NOT_NAME_CHARS = re.compile(r"[\s_\-]+")


class FileRejected(Exception):
    """The file as a whole cannot be imported; the message says why."""


class NotCsvText(FileRejected):
    """Not text a CSV file is made of (binary, not UTF-8, no line breaks)."""


@dataclasses.dataclass(frozen=True)
class Header:
    columns: tuple[str, ...]              # as written in the file
    positions: tuple[int | None, ...]     # per CUSTOMER_COLUMNS: field index, or None when absent
    present: tuple[str, ...]              # the customer columns the file has
    unknown: tuple[str, ...]              # capped: MAX_UNKNOWN_NAMES names of MAX_NAME_CHARS at most
    data_offset: int                      # first byte after the header
    data_line: int                        # physical line number of that byte

    @property
    def width(self) -> int:
        return len(self.columns)


def normalise_name(name: str) -> str:
    return _NOT_NAME_CHARS.sub("", name).lower()


def read_header(path, max_record_bytes: int) -> Header:
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
    if "\r" in text.removesuffix("\n").removesuffix("\r"):
        # The one rule for CR (docs/parsing.md): lines end at LF or CR LF; a CR alone is no line end.
        raise FileRejected("the header line holds a carriage return (CR) that does not end the line; "
                           "lines must end with LF or CR LF")
    try:
        columns = tuple(next(csv.reader([text]), []))
    except csv.Error as exc:
        raise FileRejected(f"the header line is not valid CSV: {exc}") from None
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
        unknown=tuple(_capped(name) for name in unknown[:MAX_UNKNOWN_NAMES]),
        data_offset=data_offset,
        data_line=2,
    )


def _capped(name: str) -> str:
    return name if len(name) <= MAX_NAME_CHARS else name[:MAX_NAME_CHARS - 1] + "…"
