"""What a file is, from a sample of it: encoding, delimiter, date layout, columns.

Runs before a job is created (POST /import, the preview, the CLI), so that a
file whose date layout cannot be told is refused before anything starts, and
the job stores the effective options that every resume then reads.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import os

from ..fields import SUBSCRIPTION_DATE
from . import dates
from .batch import BatchBuilder
from .header import Header, parse_header, suggestions
from .inflate import is_gzip, read_head

SAMPLE_BYTES = 1024 * 1024
PREVIEW_ROWS = 20


@dataclasses.dataclass(frozen=True)
class Detected:
    header: Header
    options: dict          # effective: what the job will show and use
    date_formats: list[str]  # the layouts that fit the sample


def detect(data: bytes, options: dict | None, *, max_record_bytes: int) -> Detected:
    """The header and effective options of a file whose first bytes are `data`.

    FileRejected when the header cannot be read; dates.DateFormatUnclear when
    date_format is auto and not exactly one layout reads the sampled dates.
    """
    options = dict(options or {})
    header = parse_header(data[:max(max_record_bytes, 1)], max_record_bytes, options)
    wanted = options.get("date_format") or "auto"
    if wanted == "auto":
        layout, fits = dates.choose(_sampled_dates(data, header))
    else:
        layout, fits = wanted, [wanted]
    header = dataclasses.replace(header, date_format=layout)
    return Detected(header, header.options(options.get("mapping"), bool(options.get("dry_run"))), fits)


def read_sample(path, max_record_bytes: int) -> tuple[bytes, int]:
    """(the file's first bytes, its size)."""
    """(the file's first bytes, its size); for a gzip file both uncompressed (the size from its trailer)."""
    size = os.stat(path).st_size
    if is_gzip(path) and size >= 4:
        with open(path, "rb") as f:
            f.seek(size - 4)
            size = int.from_bytes(f.read(4), "little")  # modulo 4 GiB: an estimate's input only
    return read_head(path, max(SAMPLE_BYTES, max_record_bytes)), size


def detect_file(path, options: dict | None, *, max_record_bytes: int) -> Detected:
    detected = detect(read_sample(path, max_record_bytes)[0], options, max_record_bytes=max_record_bytes)
    return dataclasses.replace(detected, header=dataclasses.replace(detected.header, gzip=is_gzip(path)))


def _sampled_dates(data: bytes, header: Header) -> list[str]:
    position = header.positions[SUBSCRIPTION_DATE]
    if position is None:
        return []
    body = data[header.data_offset:]
    text = body.decode(header.codec, "replace")
    if len(body) == len(data) - header.data_offset and not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]  # a line cut by the sample says nothing
    values = []
    for row in csv.reader(io.StringIO(text), delimiter=header.delimiter):
        if len(row) == header.width and row[position].strip():
            values.append(row[position].strip())
    return values


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


def column_report(header: Header) -> list[dict]:
    """Every column of the file: the field it goes to, and suggestions when the rules found none."""
    return [{"name": name, "field": field, "suggestions": [] if field else suggestions(name)}
            for name, field in zip(header.columns, header.fields)]
