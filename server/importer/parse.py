"""Turns a byte range of a CSV file into rows ready for COPY, with exact offsets.

Runs in a worker process, so its CPU never touches the server's event loop.
The header is read by header.py, the records of a window by batch.py; this
module reads the windows, bounded in bytes, rows and rejects.
"""
from __future__ import annotations

import csv
import hashlib
import multiprocessing.connection
import os
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path

from .batch import Batch, BatchBuilder
from .header import (BOM, CUSTOMER_COLUMNS, FileRejected, Header, NotCsvText, normalise_name,
                     parse_header, read_header)

# Sampled, not whole-file: a 10 GB file must not be read twice to resume it.
_FINGERPRINT_SAMPLE = 1024 * 1024
_SKIP_CHUNK = 1024 * 1024
_FIRST_CHUNK = 64 * 1024
_MAX_CHUNK = 1024 * 1024


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


def notice_dead_workers(processes: Executor | None) -> None:
    """Make a process pool whose worker died see that it is broken, even one killed mid-reply.

    CPython's ProcessPoolExecutor (as of 3.11) reads a result as soon as its pipe turns
    readable. A worker killed while writing one (kill -9 halfway through sending a parsed
    batch back, which takes a while on a loaded machine) leaves half a message there, and the
    pool's manager thread waits in recv() for the rest for ever: it never looks at the dead
    worker's sentinel, so the pool's futures never resolve, and interpreter exit hangs joining
    that thread. Nor does an end of file come, because this process, which made the pipe,
    holds its write end too. Closing that end once a worker is dead gives the reader its end
    of file: the manager marks the pool broken and fails its futures with BrokenProcessPool,
    as it does for any other death.

    Only a dead worker's pool is touched, and a pool with a dead worker is broken for good.
    """
    if not isinstance(processes, ProcessPoolExecutor):
        return
    workers = list((getattr(processes, "_processes", None) or {}).values())
    if not workers or not multiprocessing.connection.wait([w.sentinel for w in workers], timeout=0):
        return
    results = getattr(processes, "_result_queue", None)
    writer = getattr(results, "_writer", None)
    if writer is not None:
        writer.close()


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
                max_rows: int = 100_000, max_rejects: int = 10_000, first_chunk: int = _FIRST_CHUNK) -> Batch:
    """The records from start_offset on: at most batch_bytes of them, max_rows rows, max_rejects rejects.

    A record is taken when it starts in the window; one that may run past it is
    left to the next batch, unless it is the first, which is always decided.
    """
    csv.field_size_limit(max_record_bytes)
    builder = BatchBuilder(header, start_offset, start_line, max_record_bytes=max_record_bytes,
                           max_rows=max_rows, max_rejects=max_rejects, job_id=job_id)
    window_end = start_offset + batch_bytes
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size != file_size:
            raise FileRejected(f"the file changed while it was being imported (it was {file_size} bytes, "
                               f"now {size}); start a new import for the new file")
        # Read in growing chunks, not the whole window at once: a batch that its row or
        # reject bound ends early (tiny rows) must not split megabytes it does not take.
        chunk = first_chunk
        while builder.offset < window_end and not (builder.reached_end or builder.full):
            before = builder.offset
            f.seek(before)
            data = f.read(min(chunk, window_end - before))
            builder.build(data, eof=before + len(data) >= file_size)
            if builder.offset == before and not builder.reached_end:
                break  # a record longer than what was read: the next batch starts with it
            chunk = min(chunk * 2, _MAX_CHUNK)
        if builder.progressed:
            return builder.batch()
        # Not even the first record could be decided within a window: read on to where it
        # must have closed (MAX_RECORD_BYTES), once.
        f.seek(start_offset)
        data = f.read(max(max_record_bytes + 2, batch_bytes))
        builder.build(data, eof=start_offset + len(data) >= file_size)
        if builder.progressed:
            return builder.batch()
        # A first line longer than MAX_RECORD_BYTES without a line break: rejected whole,
        # found to its end without keeping it.
        length = len(data) + _skip_line(f)
        builder.reject_long_line(data[:max_record_bytes], length)
        builder.reached_end = start_offset + length >= file_size
        return builder.batch()


def _skip_line(f) -> int:
    """Bytes up to and including the next LF (or to the end of the file)."""
    skipped = 0
    while chunk := f.read(_SKIP_CHUNK):
        end = chunk.find(b"\n")
        if end >= 0:
            return skipped + end + 1
        skipped += len(chunk)
    return skipped


__all__ = ["BOM", "CUSTOMER_COLUMNS", "Batch", "FileRejected", "Header", "NotCsvText", "exit_with_parent",
           "fingerprint", "notice_dead_workers", "normalise_name", "parse_batch", "parse_header", "read_header"]
