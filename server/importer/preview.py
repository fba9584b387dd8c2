"""What an import of a file would do, from a sample of it (POST /import/preview).

The settings detection finds (detect.py), the first rows as the engine would store
them (records.py itself reads them), each column's field with suggestions when the
header rules found none, a check of what each column's values look like against
its field's shape (server/fields.py), and a few decoded non-ASCII words so a
person sees `José` and not `JosÃ©` before anything is stored.
"""
from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Sequence

from ..fields import BY_NAME, IMPORTED, SHAPES
from . import dates
from .records import BatchBuilder, unguard
from .dates import DateFormatUnclear
from .detect import detect, read_sample, sampled_records
from .header import Header, suggestions

PREVIEW_ROWS = 20
CHECK_ROWS = 200          # sampled records whose values the column checks look at
NON_ASCII_EXAMPLES = 5
_EXAMPLE_CHARS = 256 * 1024  # of the sample's text, searched for non-ASCII words
_WORD = re.compile(r"[^\s,;|\"'\x00-\x1f]+")
_NOUNS = {"email": "email addresses", "phone": "phone numbers", "url": "web addresses"}


def preview_file(path, options: dict, max_record_bytes: int) -> dict:
    """The preview of a file (blocking: call from a thread).

    FileRejected (EncodingUnclear among them) when the file cannot be read as asked.
    An unclear date layout does not stop the preview: it shows the rows read with the
    first layout that fits (or ISO) and names those that fit, for the person to choose.
    """
    data, size = read_sample(path, max_record_bytes)
    try:
        detected = detect(data, options, max_record_bytes=max_record_bytes)
        date_formats = detected.date_formats
    except DateFormatUnclear as exc:
        date_formats = exc.fits
        layout = (exc.fits or [dates.ISO])[0]
        detected = detect(data, {**options, "date_format": layout}, max_record_bytes=max_record_bytes)
        detected = dataclasses.replace(detected, options={**detected.options, "date_format": "auto"})
    header = detected.header
    rows, estimated = preview_rows(data, header, file_size=size, max_record_bytes=max_record_bytes)
    sample = list(itertools.islice(sampled_records(data, header, max_record_bytes=max_record_bytes), CHECK_ROWS))
    return {"encoding": detected.options["encoding"], "delimiter": detected.options["delimiter"],
            "date_format": detected.options["date_format"], "date_formats": date_formats,
            "columns": column_report(header, sample), "rows": rows, "estimated_rows": estimated,
            "non_ascii_examples": non_ascii_examples(data, header),
            "fields": [{"name": f.name, "label": f.label} for f in IMPORTED]}


def preview_rows(data: bytes, header: Header, *, file_size: int, max_record_bytes: int) -> tuple[list[dict], int]:
    """(the first PREVIEW_ROWS records as they would be stored, each with its reject reason or None;
    the rows the whole file should hold, estimated from those records' bytes).

    `data` is the file's first bytes; file_size its whole size (for a gzip file, uncompressed estimate).
    """
    builder = BatchBuilder(header, header.data_offset, header.data_line, max_record_bytes=max_record_bytes,
                           max_rows=PREVIEW_ROWS, max_rejects=PREVIEW_ROWS, job_id=0)
    builder.build(data[header.data_offset:], eof=len(data) >= file_size)
    batch = builder.batch()
    rows = [{**row, "reject": None} for row in batch.recent]
    rows += [{"line_no": line, "reject": reason, "raw": raw.decode("utf-8", "replace").rstrip("\r\n")}
             for line, _, reason, raw in batch.rejects]
    rows.sort(key=lambda row: row["line_no"])
    records = batch.accepted + len(batch.rejects)
    taken = batch.end_offset - header.data_offset
    estimated = round(records * (file_size - header.data_offset) / taken) if taken > 0 else 0
    return rows[:PREVIEW_ROWS], estimated


def column_report(header: Header, sample: Sequence[list[str]] = ()) -> list[dict]:
    """Every column of the file: the field it goes to, suggestions when the rules found none, and
    the check of its sampled values against the field's shape (None: the field has no shape)."""
    return [{"name": name, "field": field, "suggestions": [] if field else suggestions(name),
             "check": value_check(name, field, [row[i] for row in sample], header.date_format)}
            for i, (name, field) in enumerate(zip(header.columns, header.fields))]


def value_check(column: str, field: str | None, cells: list[str], date_format: str) -> dict | None:
    """How many of a column's non-empty sampled values look like its field's values, with a warning
    when most do not (a column EMAIL full of phone numbers)."""
    kind = BY_NAME[field].shape if field else None
    if kind is None:
        return None
    if kind == "date":
        read = dates.reader(date_format)
        looks, noun = (lambda v: read(v) is not None), f"dates in the layout {date_format}"
    else:
        looks, noun = SHAPES[kind], _NOUNS[kind]
    values = [unguard(v) for v in (cell.strip() for cell in cells) if v]
    matching = sum(1 for v in values if looks(v))
    warning = None
    if values and matching * 2 < len(values):
        warning = (f"most values of {column!r} do not look like {noun}: {matching} of the "
                   f"{len(values)} sampled do")
    return {"kind": kind, "sampled": len(values), "matching": matching, "warning": warning}


def non_ascii_examples(data: bytes, header: Header) -> list[str]:
    """Up to NON_ASCII_EXAMPLES distinct words with non-ASCII letters, as the chosen encoding reads them."""
    text = data[header.data_offset:header.data_offset + _EXAMPLE_CHARS * 4].decode(header.codec, "replace")
    found: dict[str, None] = {}
    for match in _WORD.finditer(text[:_EXAMPLE_CHARS]):  # words first: linear, whatever the text
        word = match.group()
        if not word.isascii() and "\ufffd" not in word and len(word) <= 40:
            found[word] = None
            if len(found) >= NON_ASCII_EXAMPLES:
                break
    return list(found)
