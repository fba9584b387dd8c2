"""The header line of a customer CSV file: its encoding, delimiter, and which field holds which column."""
from __future__ import annotations

import csv
import dataclasses
import difflib
import re

from ..fields import IMPORTED_NAMES, header_names, normalise_name
from .encoding import BOM, BOMS, CODECS, ENCODINGS, EncodingUnclear, detect_encoding, refuse_binary
from .inflate import is_gzip, read_head
from .refusals import FileRejected, NotCsvText

# The columns of the customers table that a file can fill, in COPY order.
CUSTOMER_COLUMNS = IMPORTED_NAMES
# Normalised header name -> column. None: known, deliberately not stored.
HEADER_NAMES = header_names()
DELIMITERS = (",", ";", "\t", "|")
# What a job keeps of the header names it does not know: enough to recognise them,
# small enough that a job stays a small record whatever the file's header.
MAX_UNKNOWN_NAMES = 50
MAX_NAME_CHARS = 100
MAX_SUGGESTIONS = 3
_SEP_LINE = re.compile(r"sep=(.)\r?\n?")


@dataclasses.dataclass(frozen=True)
class Header:
    columns: tuple[str, ...]              # as written in the file
    positions: tuple[int | None, ...]     # per CUSTOMER_COLUMNS: field index, or None when absent
    present: tuple[str, ...]              # the customer columns the file has
    unknown: tuple[str, ...]              # capped: MAX_UNKNOWN_NAMES names of MAX_NAME_CHARS at most
    data_offset: int                      # first byte after the header
    data_line: int                        # physical line number of that byte
    encoding: str = "utf-8"               # the option's value: utf-8, utf-16, windows-1252, latin-1
    codec: str = "utf-8"                  # Python's codec for it (utf-16-le / utf-16-be)
    delimiter: str = ","
    date_format: str = "YYYY-MM-DD"
    fields: tuple[str | None, ...] = ()   # per column: the field it goes to, or None
    gzip: bool = False                    # offsets are then into the inflated stream
    # auto found mixed evidence (valid UTF-8 sequences, invalid bytes): the header is read as
    # UTF-8, but no row may be until a person chooses (check_encoding).
    unclear: tuple[int, int] | None = None

    def check_encoding(self) -> Header:
        """The header, or EncodingUnclear when its encoding is still for a person to choose."""
        if self.unclear is not None:
            raise EncodingUnclear(*self.unclear)
        return self

    @property
    def width(self) -> int:
        return len(self.columns)

    def options(self, mapping: dict | None = None, dry_run: bool = False) -> dict:
        """The effective options, as a job shows them."""
        return {"encoding": self.encoding, "delimiter": self.delimiter, "date_format": self.date_format,
                "mapping": mapping or {}, "dry_run": dry_run}


def read_header(path, max_record_bytes: int, options: dict | None = None) -> Header:
    header = parse_header(read_head(path, max_record_bytes), max_record_bytes, options).check_encoding()
    return dataclasses.replace(header, gzip=is_gzip(path))


def read_records_up_to(max_record_bytes: int) -> None:
    """Let Python's csv module read fields as long as the engine's record limit (its default: 128 KB).

    Process-wide, and every reader of a process sets the same configured value.
    """
    csv.field_size_limit(max(max_record_bytes, 1))


def first_line(data: bytes, start: int, codec: str) -> int:
    """The offset just past the first LF at or after `start` (-1: none)."""
    if codec.startswith("utf-16"):
        lf = b"\n\x00" if codec == "utf-16-le" else b"\x00\n"
        at = data.find(lf, start)
        while at >= 0 and (at - start) % 2:
            at = data.find(lf, at + 1)
        return -1 if at < 0 else at + 2
    at = data.find(b"\n", start)
    return -1 if at < 0 else at + 1


def parse_header(data: bytes, max_record_bytes: int, options: dict | None = None) -> Header:
    """The header from the first bytes of a file; FileRejected says why it cannot be imported.

    Mixed encoding evidence is no reason to refuse a header (the upload checks read only that):
    it is marked `unclear`, and detection and the engine refuse it (check_encoding).
    """
    options = options or {}
    wanted = options.get("encoding") or "auto"
    if wanted != "utf-16" and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        refuse_binary(data)  # before any guess at its encoding, which any bytes would get
    unclear = None
    try:
        encoding, codec, offset = detect_encoding(data, wanted)
    except EncodingUnclear as exc:  # the header itself may still be read: its names are ASCII as a rule
        encoding, codec, offset, unclear = "utf-8", "utf-8", 0, exc.evidence
    line, offset, end = _line(data, offset, codec, max_record_bytes)
    data_line = 2
    sep = _SEP_LINE.fullmatch(line)
    delimiter = options.get("delimiter") or "auto"
    if sep:  # Excel's "sep=;" line: it names the delimiter and is no header
        if delimiter == "auto":
            delimiter = sep.group(1)
        line, offset, end = _line(data, end, codec, max_record_bytes)
        data_line = 3
    if "\x00" in line:
        raise NotCsvText("this is not a CSV file: its first line holds NUL bytes")
    if not line.strip():
        raise FileRejected("the file is empty" if not data else "the first line (the header) is empty")
    if "\r" in line.removesuffix("\n").removesuffix("\r"):
        # The one rule for CR (docs/parsing.md): lines end at LF or CR LF; a CR alone is no line end.
        raise FileRejected("the header line holds a carriage return (CR) that does not end the line; "
                           "lines must end with LF or CR LF")
    if delimiter == "auto":
        # The candidate the header line holds most of; a one-column file is comma-separated.
        delimiter = max(DELIMITERS, key=line.count) if any(d in line for d in DELIMITERS) else ","
    if delimiter not in DELIMITERS:
        raise FileRejected(f"the delimiter {delimiter!r} is not one of , ; tab |")
    try:
        columns = tuple(next(csv.reader([line], delimiter=delimiter), []))
    except csv.Error as exc:
        raise FileRejected(f"the header line is not valid CSV: {exc}") from None
    header = map_header(columns, data_offset=end, mapping=options.get("mapping"))
    return dataclasses.replace(header, data_line=data_line, encoding=encoding, codec=codec,
                               delimiter=delimiter, unclear=unclear,
                               date_format=_concrete(options.get("date_format")) or header.date_format)


def _concrete(value: str | None) -> str | None:
    return None if value in (None, "auto") else value


def _line(data: bytes, start: int, codec: str, max_record_bytes: int) -> tuple[str, int, int]:
    """(text, start, end) of the line at `start`: decoded, its line end kept."""
    end = first_line(data, start, codec)
    if end < 0:
        if len(data) >= max_record_bytes:
            raise NotCsvText(f"this is not a CSV file: no line break in its first {max_record_bytes} bytes")
        end = len(data)
    try:
        return data[start:end].decode(codec), start, end
    except UnicodeDecodeError:
        raise NotCsvText(f"this is not a CSV file: its first line is not {_label(codec)} text") from None


def _label(codec: str) -> str:
    return {"utf-8": "UTF-8", "cp1252": "Windows-1252", "latin-1": "Latin-1"}.get(codec, "UTF-16")


def map_header(columns: tuple[str, ...], data_offset: int, mapping: dict | None = None) -> Header:
    """Which field each column goes to: `mapping` ({column: field or None}) first, then the header rules."""
    mapping = _mapping_by_column(columns, mapping or {})
    positions: dict[str, int] = {}
    fields: list[str | None] = []
    unknown = []
    for index, name in enumerate(columns):
        if index in mapping:
            column = mapping[index]
        else:
            key = normalise_name(name)
            column = HEADER_NAMES.get(key)
            if key not in HEADER_NAMES:
                unknown.append(name.strip())
        fields.append(column)
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
        fields=tuple(fields),
    )


def _mapping_by_column(columns: tuple[str, ...], mapping: dict) -> dict[int, str | None]:
    """Column index -> field; a mapping key names a column as written, or by the header rules."""
    exact = {name.strip(): i for i, name in enumerate(columns)}
    loose = {normalise_name(name): i for i, name in enumerate(columns)}
    found = {}
    for name, field in mapping.items():
        index = exact.get(name.strip(), loose.get(normalise_name(name)))
        if index is None:
            raise FileRejected(f"the mapping names the column {name!r}, which the file's header does not have")
        if field is not None and field not in CUSTOMER_COLUMNS:
            raise FileRejected(f"the mapping sends {name!r} to {field!r}, which is no customer field")
        found[index] = field
    return found


def suggestions(name: str) -> list[str]:
    """Fields whose header names are close to `name` (FIRSNAME -> first_name), best first."""
    keys = [key for key, field in HEADER_NAMES.items() if field is not None]
    close = difflib.get_close_matches(normalise_name(name), keys, n=MAX_SUGGESTIONS * 2, cutoff=0.6)
    fields = (HEADER_NAMES[key] for key in close)
    return list(dict.fromkeys(field for field in fields if field is not None))[:MAX_SUGGESTIONS]


def as_text(raw: bytes, encoding: str) -> str:
    """A record's bytes as text, read in the job's encoding (a byte that is none kept as U+FFFD)."""
    if encoding == "utf-16":
        codec = "utf-16-be" if raw[:1] == b"\x00" else "utf-16-le"
    else:
        codec = CODECS.get(encoding, "utf-8")
    return raw.decode(codec, "replace")


def _capped(name: str) -> str:
    return name if len(name) <= MAX_NAME_CHARS else name[:MAX_NAME_CHARS - 1] + "…"


__all__ = ["BOM", "BOMS", "CODECS", "CUSTOMER_COLUMNS", "ENCODINGS", "EncodingUnclear", "FileRejected", "Header",
           "NotCsvText", "normalise_name", "parse_header", "read_header", "map_header", "suggestions"]
