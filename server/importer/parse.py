"""Turns a byte range of a CSV file into rows ready for COPY, with exact offsets.

Runs in a worker process, so its CPU never touches the server's event loop.
The header is read by header.py, the records of a window by records.py (the
record parser); this module reads the windows, bounded in bytes, rows and
rejects (ParseLimits), plain or inflated, and fingerprints the file.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

from .batch import Batch
from .header import (BOM, CUSTOMER_COLUMNS, FileRejected, Header, NotCsvText, first_line, normalise_name,
                     parse_header, read_header)
from .inflate import BrokenGzip, Inflated
from .records import BatchBuilder

# Sampled, not whole-file: a 10 GB file must not be read twice to resume it.
_FINGERPRINT_SAMPLE = 1024 * 1024
_SKIP_CHUNK = 1024 * 1024
_FIRST_CHUNK = 64 * 1024
_MAX_CHUNK = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class ParseLimits:
    """What bounds one batch. Picklable: it crosses to the parse worker with each batch."""
    batch_bytes: int
    max_record_bytes: int
    max_rows: int
    max_rejects: int

    @classmethod
    def of(cls, config) -> ParseLimits:
        return cls(config.batch_bytes, config.max_record_bytes, config.batch_rows, config.batch_rejects)

    def rejects_left(self, left: int) -> ParseLimits:
        """These limits, with never more rejects than `left`."""
        return dataclasses.replace(self, max_rejects=min(self.max_rejects, left))

    def keywords(self) -> dict:
        return dataclasses.asdict(self)


def fingerprint(path: Path) -> dict:
    """What identifies this file's content well enough to resume it safely."""
    with open(path, "rb") as f:
        stat = os.fstat(f.fileno())
        head = hashlib.sha256(f.read(_FINGERPRINT_SAMPLE)).hexdigest()
        f.seek(max(stat.st_size - _FINGERPRINT_SAMPLE, 0))
        tail = hashlib.sha256(f.read(_FINGERPRINT_SAMPLE)).hexdigest()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "head": head, "tail": tail}


def parse_batch(path: Path, header: Header, start_offset: int, start_line: int, *,
                batch_bytes: int, max_record_bytes: int, job_id: int, file_size: int,
                max_rows: int = 100_000, max_rejects: int = 10_000, first_chunk: int = _FIRST_CHUNK,
                stream_offset: int | None = None, stop_offset: int | None = None) -> Batch:
    """The records from start_offset on: at most batch_bytes of them, max_rows rows, max_rejects rejects.

    For a gzip file start_offset is the job's checkpoint in the compressed file and
    stream_offset where the batch before ended in the inflated stream (None: found
    from start_line, by inflating from the top).

    A record is taken when it starts in the window; one that may run past it is
    left to the next batch, unless it is the first, which is always decided.
    `stop_offset` (a plain file's range end, a record boundary): no record that
    starts there or after is taken, and the batch that reaches it ends the range.
    """
    if header.gzip:
        try:
            return _parse_gzip(path, header, start_offset, start_line, batch_bytes=batch_bytes,
                               max_record_bytes=max_record_bytes, job_id=job_id, file_size=file_size,
                               max_rows=max_rows, max_rejects=max_rejects, first_chunk=first_chunk,
                               stream_offset=stream_offset)
        except BrokenGzip:  # met mid-file: the job fails with its message (a FileRejected)
            stream = _INFLATED.pop((str(path), job_id), None)
            if stream is not None:
                stream.close()
            raise
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size != file_size:
            raise FileRejected(f"the file changed while it was being imported (it was {file_size} bytes, "
                               f"now {size}); start a new import for the new file")
        stop = None if stop_offset is None or stop_offset >= file_size else stop_offset
        builder = BatchBuilder(header, start_offset, start_line, max_record_bytes=max_record_bytes,
                               max_rows=max_rows, max_rejects=max_rejects, job_id=job_id, stop=stop)
        return _read_window(f, builder, start_offset, batch_bytes, max_record_bytes, first_chunk,
                            lambda offset, data: offset + len(data) >= file_size)


def _read_window(f, builder: BatchBuilder, start_offset: int, batch_bytes: int, max_record_bytes: int,
                 first_chunk: int, at_end) -> Batch:
    """The batch from `f` (a file, or an inflated gzip stream); at_end(offset, data) says whether data ends it."""
    window_end = start_offset + batch_bytes
    # Read in growing chunks, not the whole window at once: a batch that its row or
    # reject bound ends early (tiny rows) must not split megabytes it does not take.
    chunk = first_chunk
    while builder.offset < min(window_end, builder.stop or window_end) and not (builder.reached_end or builder.full):
        before = builder.offset
        f.seek(before)
        want = min(chunk, window_end - before)
        data = f.read(want)
        builder.build(data, eof=at_end(before, data) or len(data) < want)
        if builder.offset == before and not builder.reached_end:
            break  # a record longer than what was read: the next batch starts with it
        chunk = min(chunk * 2, _MAX_CHUNK)
    if builder.progressed:
        return builder.batch()
    # Not even the first record could be decided within a window: read on to where it
    # must have closed (MAX_RECORD_BYTES), once.
    f.seek(start_offset)
    want = max(max_record_bytes + 2, batch_bytes)
    data = f.read(want)
    builder.build(data, eof=at_end(start_offset, data) or len(data) < want)
    if builder.progressed:
        return builder.batch()
    # A first line longer than MAX_RECORD_BYTES without a line break: rejected whole,
    # found to its end without keeping it.
    length = len(data) + _skip_line(f)
    builder.reject_long_line(data[:max_record_bytes], length)
    f.seek(start_offset + length)
    builder.reached_end = not f.read(1)
    return builder.batch()


# Per parse-worker process: the gzip stream of the job it reads, kept open from batch to
# batch so that each one inflates only its own bytes. Worker state, never the server's.
_INFLATED: dict[tuple[str, int], Inflated] = {}


def _parse_gzip(path: Path, header: Header, checkpoint: int, start_line: int, *, batch_bytes: int,
                max_record_bytes: int, job_id: int, file_size: int, max_rows: int, max_rejects: int,
                first_chunk: int, stream_offset: int | None = None) -> Batch:
    """A batch of a gzip file: `checkpoint` is the job's byte in the compressed file, the stream offset
    comes from the line number (a resume inflates from the top and skips lines) or from the batch before."""
    if os.stat(path).st_size != file_size:
        raise FileRejected(f"the file changed while it was being imported (it was {file_size} bytes, "
                           f"now {os.stat(path).st_size}); start a new import for the new file")
    key = (str(path), job_id)
    stream = _INFLATED.get(key)
    if stream is None:
        for old in _INFLATED.values():
            old.close()
        _INFLATED.clear()
        stream = _INFLATED[key] = Inflated(path)
    if stream_offset is None:
        stream_offset = stream.skip_lines(header.data_offset, start_line - header.data_line,
                                          lambda data, at: first_line(data, at, header.codec),
                                          byte_lines=not header.codec.startswith("utf-16"))
    stream.forget_before(stream_offset)
    builder = BatchBuilder(header, stream_offset, start_line, max_record_bytes=max_record_bytes,
                           max_rows=max_rows, max_rejects=max_rejects, job_id=job_id)
    batch = _read_window(stream, builder, stream_offset, batch_bytes, max_record_bytes, first_chunk,
                         lambda offset, data: False)
    batch.stream_end = batch.end_offset
    batch.start_offset = checkpoint
    # The job's bytes are the compressed file's: where the inflating has got to, always onwards
    # (the checkpoint only moves forward) and the whole file once the stream ends.
    if batch.eof:
        batch.end_offset = file_size
        _INFLATED.pop(key, None)
        stream.close()
    else:
        batch.end_offset = min(max(checkpoint + 1, stream.compressed_position()), file_size - 1)
    return batch


def _skip_line(f) -> int:
    """Bytes up to and including the next LF (or to the end of the file)."""
    skipped = 0
    while chunk := f.read(_SKIP_CHUNK):
        end = chunk.find(b"\n")
        if end >= 0:
            return skipped + end + 1
        skipped += len(chunk)
    return skipped


__all__ = ["BOM", "CUSTOMER_COLUMNS", "Batch", "FileRejected", "Header", "NotCsvText", "ParseLimits",
           "fingerprint", "normalise_name", "parse_batch", "parse_header", "read_header"]
