"""The upload directory (IMPORT_DIR/uploads): files being written, and files whole.

Functions that touch the disk block: callers run them on a thread (Sink.write
does so itself). A file is written under a temporary name, made durable, then
given its final name `<id>.csv`, so a file under a final name is always whole.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
import shutil
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from .errors import NoRoom

T = TypeVar("T")
FINAL_SUFFIX = ".csv"
HASH_BLOCK = 1024**2


@dataclasses.dataclass(frozen=True)
class StoredFile:
    path: Path          # where the server reads it
    filename: str       # what people call it
    size: int
    sha256: str | None = None  # known for uploads, which were hashed while written
    fields: dict[str, str] = dataclasses.field(default_factory=dict)  # the form's other fields (options)


def final_path(directory: Path, upload_id: str) -> Path:
    return directory / f"{upload_id}{FINAL_SUFFIX}"


def free_bytes(directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(directory).free


def create(path: Path) -> BinaryIO:
    """A new file, open for writing; never someone else's (the name is a fresh uuid)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "xb")


def durable(out: BinaryIO) -> None:
    """Flush, fsync and close: what was written survives a crash of the machine."""
    with out:
        out.flush()
        os.fsync(out.fileno())


def put_in_place(partial: Path, final: Path) -> Path:
    """Give a whole, durable file its final name; idempotent (a crash may come in between)."""
    if partial.exists():
        os.replace(partial, final)
    return final


def cut_back(out: BinaryIO, offset: int) -> None:
    """Forget everything written past `offset` (a chunk refused or cut short), and close."""
    with out:
        out.flush()
        out.truncate(offset)


def discard(out: BinaryIO, path: Path) -> None:
    with contextlib.suppress(OSError):
        out.close()
    path.unlink(missing_ok=True)


def stale(directory: Path, suffix: str, older_than: float) -> list[Path]:
    """Files named *suffix that nobody has written for `older_than` seconds."""
    cutoff = time.time() - older_than
    found = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(directory):
            with contextlib.suppress(FileNotFoundError):
                if entry.name.endswith(suffix) and entry.stat().st_mtime < cutoff:
                    found.append(Path(entry.path))
    return found


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def remove(path: Path) -> Awaitable[None]:
    """Delete a stored upload that no job will read (an awaitable, run on a thread)."""
    return asyncio.get_running_loop().run_in_executor(None, lambda: path.unlink(missing_ok=True))


async def shielded(awaitable: Awaitable[T]) -> T:
    """Clean-up that a cancelled handler must still finish (no partial file, a file that matches its row)."""
    return await asyncio.shield(asyncio.ensure_future(awaitable))


class Sink:
    """An open file, and the hashes of what goes into it, written on a thread; the
    free-space floor is kept after every write. Counts what really reached the disk."""

    def __init__(self, out: BinaryIO, *digests: Any, min_free_bytes: int) -> None:
        self.out = out
        self.digests = [d for d in digests if d is not None]
        self.min_free_bytes = min_free_bytes
        self.written = 0
        self._pending: asyncio.Future | None = None

    async def write(self, data: bytes) -> None:
        """Write and hash `data` on a thread; NoRoom once the disk is past the floor."""
        self._pending = asyncio.get_running_loop().run_in_executor(None, self.write_now, data)
        if await self._pending < self.min_free_bytes:
            raise NoRoom.below_floor(self.min_free_bytes)

    def write_now(self, data: bytes) -> int:
        """Write and hash `data` here (a thread); the bytes then free on the file's disk."""
        for digest in self.digests:
            digest.update(data)
        self.out.write(data)
        self.written += len(data)
        disk = os.fstatvfs(self.out.fileno())
        return disk.f_bavail * disk.f_frsize  # as shutil.disk_usage counts `free`

    async def settled(self) -> None:
        """Until a write that a cancellation left running on its thread has ended."""
        if self._pending is not None:
            await asyncio.wait({self._pending})
