"""What a file is, from a sample of it: encoding, delimiter, date layout, columns.

Runs before a job is created (POST /import, the preview, the CLI), so that a
file whose date layout or encoding cannot be told is refused before anything
starts, and the job stores the effective options that every resume then reads.
Every reader here takes records as long as the engine does (MAX_RECORD_BYTES),
and a record it cannot read is skipped, never raised: detection ends in options
or in FileRejected, whatever the bytes.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import os
from collections.abc import Iterator

from ..fields import SUBSCRIPTION_DATE
from . import dates
from .header import FileRejected, Header, parse_header, read_records_up_to
from .inflate import is_gzip, read_head

SAMPLE_BYTES = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Detected:
    header: Header
    options: dict          # effective: what the job will show and use
    date_formats: list[str]  # the layouts that fit the sample


def detect(data: bytes, options: dict | None, *, max_record_bytes: int) -> Detected:
    """The header and effective options of a file whose first bytes are `data`.

    FileRejected when the header cannot be read (EncodingUnclear when the bytes are
    partly UTF-8); dates.DateFormatUnclear when date_format is auto and not exactly one
    layout reads the sampled dates.
    """
    options = dict(options or {})
    header = parse_header(data[:max(max_record_bytes, 1)], max_record_bytes, options).check_encoding()
    wanted = options.get("date_format") or "auto"
    if wanted == "auto":
        layout, fits = dates.choose(sampled_column(data, header, header.positions[SUBSCRIPTION_DATE],
                                                   max_record_bytes=max_record_bytes))
    else:
        layout, fits = wanted, [wanted]
    header = dataclasses.replace(header, date_format=layout)
    return Detected(header, header.options(options.get("mapping"), bool(options.get("dry_run"))), fits)


def read_sample(path, max_record_bytes: int) -> tuple[bytes, int]:
    """(the file's first bytes, its size); for a gzip file both uncompressed (the size from its trailer).

    BrokenGzip (a FileRejected) when a gzip file is cut off or damaged within the sample.
    """
    size = os.stat(path).st_size
    if is_gzip(path) and size >= 4:
        with open(path, "rb") as f:
            f.seek(size - 4)
            size = int.from_bytes(f.read(4), "little")  # modulo 4 GiB: an estimate's input only
    return read_head(path, max(SAMPLE_BYTES, max_record_bytes)), size


def detect_file(path, options: dict | None, *, max_record_bytes: int) -> Detected:
    detected = detect(read_sample(path, max_record_bytes)[0], options, max_record_bytes=max_record_bytes)
    return dataclasses.replace(detected, header=dataclasses.replace(detected.header, gzip=is_gzip(path)))


def sampled_records(data: bytes, header: Header, *, max_record_bytes: int) -> Iterator[list[str]]:
    """The sample's records of the header's width, as text; a record that cannot be read is skipped."""
    body = data[header.data_offset:]
    text = body.decode(header.codec, "replace")
    if not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]  # a line cut by the sample says nothing
    read_records_up_to(max_record_bytes)
    reader = csv.reader(io.StringIO(text), delimiter=header.delimiter)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error:
            continue  # a stray quote, a record past the limit: the import rejects it; the sample skips it
        if len(row) == header.width:
            yield row


def sampled_column(data: bytes, header: Header, position: int | None, *, max_record_bytes: int,
                   limit: int | None = None) -> list[str]:
    """The non-empty values (trimmed) of one column in the sample; at most `limit` of them."""
    if position is None:
        return []
    values = []
    for row in sampled_records(data, header, max_record_bytes=max_record_bytes):
        if value := row[position].strip():
            values.append(value)
            if limit is not None and len(values) >= limit:
                break
    return values


__all__ = ["Detected", "FileRejected", "detect", "detect_file", "read_sample", "sampled_column",
           "sampled_records"]
