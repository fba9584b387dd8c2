"""An upload's bytes on disk, by its id. Every function here blocks: callers run them on a thread.

An upload in progress is IMPORT_DIR/uploads/<id>.tus; once complete it is
renamed <id>.csv (upload_core.disk's final name), so a file with that name is
always whole (a `.tus` file is never mistaken for an importable one, and never
for a multipart upload's temporary file either).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from ..upload_core import disk

PART_SUFFIX = ".tus"
final_path = disk.final_path


class FileLost(Exception):
    """The disk holds fewer bytes than the database says were stored."""


def part_path(directory: Path, upload_id: str) -> Path:
    return directory / f"{upload_id}{PART_SUFFIX}"


def create(directory: Path, upload_id: str) -> None:
    disk.create(part_path(directory, upload_id)).close()


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


def finish(directory: Path, upload_id: str) -> Path:
    """The complete upload under its final name (renamed now, or before a crash)."""
    return disk.put_in_place(part_path(directory, upload_id), final_path(directory, upload_id))


def remove(directory: Path, upload_id: str) -> None:
    part_path(directory, upload_id).unlink(missing_ok=True)
    final_path(directory, upload_id).unlink(missing_ok=True)


def stale_parts(directory: Path, older_than_seconds: float) -> list[str]:
    """Ids of part files untouched for that long (whose rows may be gone)."""
    return [path.name[: -len(PART_SUFFIX)] for path in disk.stale(directory, PART_SUFFIX, older_than_seconds)]
