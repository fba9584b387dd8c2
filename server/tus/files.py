"""An upload's bytes on disk. Every function here blocks: callers run them on a thread.

An upload in progress is IMPORT_DIR/uploads/<id>.tus; once complete it is
renamed <id>.csv, so a file with that name is always whole (a `.tus` file is
never mistaken for an importable one, and never for a multipart upload's
temporary file either).
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import BinaryIO

from ..uploads import check_header

PART_SUFFIX = ".tus"
FINAL_SUFFIX = ".csv"
HASH_BLOCK = 1024**2


class FileLost(Exception):
    """The disk holds fewer bytes than the database says were stored."""


def part_path(directory: Path, upload_id: str) -> Path:
    return directory / f"{upload_id}{PART_SUFFIX}"


def final_path(directory: Path, upload_id: str) -> Path:
    return directory / f"{upload_id}{FINAL_SUFFIX}"


def create(directory: Path, upload_id: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    part_path(directory, upload_id).touch(exist_ok=False)


def open_at(directory: Path, upload_id: str, offset: int) -> BinaryIO:
    """The part file, positioned at `offset`. Bytes past it (a write whose offset
    was never committed) are cut off: the database's offset is the truth."""
    path = part_path(directory, upload_id)
    out = open(path, "r+b")
    try:
        if os.fstat(out.fileno()).st_size < offset:
            raise FileLost(f"{path.name} has fewer than the {offset} bytes stored")
        out.truncate(offset)
        out.seek(offset)
    except BaseException:
        out.close()
        raise
    return out


def keep(out: BinaryIO) -> None:
    """Make what was written durable before the offset that counts it is committed."""
    with out:
        out.flush()
        os.fsync(out.fileno())


def drop_from(out: BinaryIO, offset: int) -> None:
    """Forget everything written past `offset` (a chunk refused or cut short)."""
    with out:
        out.flush()
        out.truncate(offset)


def finish(directory: Path, upload_id: str) -> Path:
    """Rename a complete upload to its final name; idempotent (a crash may come in between)."""
    final = final_path(directory, upload_id)
    part = part_path(directory, upload_id)
    if part.exists():
        os.replace(part, final)
    return final


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def check_head(path: Path, max_line_bytes: int) -> None:
    """The import engine's header rules on the file's first line (raises NotCsv / BadCsvHeader)."""
    with open(path, "rb") as f:
        check_header(f.read(max_line_bytes), max_line_bytes=max_line_bytes)


def remove(directory: Path, upload_id: str) -> None:
    part_path(directory, upload_id).unlink(missing_ok=True)
    final_path(directory, upload_id).unlink(missing_ok=True)


def stale_parts(directory: Path, older_than_seconds: float) -> list[str]:
    """Ids of part files untouched for that long (whose rows may be gone)."""
    if not directory.is_dir():
        return []
    cutoff = time.time() - older_than_seconds
    found = []
    for entry in os.scandir(directory):
        if entry.name.endswith(PART_SUFFIX) and entry.stat().st_mtime < cutoff:
            found.append(entry.name[: -len(PART_SUFFIX)])
    return found
