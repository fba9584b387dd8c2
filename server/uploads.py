"""Files to import: an upload streamed into IMPORT_DIR/uploads, or a name inside IMPORT_DIR.

An upload never sits in memory: each chunk of the multipart stream goes to
disk (and into its sha256) on a thread, so a 10 GB file costs the server a
chunk's worth of RAM and the event loop never waits on the disk. Content
that is plainly not a customer CSV is refused as soon as its first line is in,
not after gigabytes of it.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import re
import uuid
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

from aiohttp import BodyPartReader, MultipartReader

from .errors import DomainError, NotFound
from .importer.parse import FileRejected, NotCsvText, parse_header

CHUNK_BYTES = 256 * 1024
UPLOAD_FIELD = "file"
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")


class BadRequest(DomainError):
    status = 400


class UploadTooLarge(DomainError):
    status = 413


class NotCsv(DomainError):
    status = 415


class BadCsvHeader(DomainError):
    status = 422


class ImportFileNotFound(NotFound):
    pass


@dataclasses.dataclass(frozen=True)
class StoredFile:
    path: Path          # where the server reads it
    filename: str       # what people call it
    size: int
    sha256: str | None = None  # known for uploads, which were hashed while written


def check_header(head: bytes, *, max_line_bytes: int) -> None:
    """Refuse content whose first line cannot be a customer CSV header: the engine's own rules."""
    try:
        parse_header(head, max_line_bytes)
    except NotCsvText as exc:
        raise NotCsv(str(exc)) from None
    except FileRejected as exc:
        raise BadCsvHeader(str(exc)) from None


async def save_upload(reader: MultipartReader, upload_dir: Path, *, max_bytes: int,
                      max_line_bytes: int) -> StoredFile:
    """Stream the `file` field to a new file under upload_dir; nothing is left on any failure.

    A client that goes away mid-upload surfaces here as an exception (or a
    cancellation), which removes the partial file like any other failure.
    """
    part = await _file_part(reader)
    loop = asyncio.get_running_loop()
    path = upload_dir / f"{uuid.uuid4().hex}.csv"
    out = await loop.run_in_executor(None, _create, path)
    digest = hashlib.sha256()
    size = 0
    head = b""
    try:
        while chunk := await part.read_chunk(CHUNK_BYTES):
            size += len(chunk)
            if size > max_bytes:
                raise UploadTooLarge(f"the upload is larger than the limit of {max_bytes} bytes")
            if head is not None:
                head += chunk
                if b"\n" in head or len(head) >= max_line_bytes:
                    check_header(head, max_line_bytes=max_line_bytes)
                    head = None
            await loop.run_in_executor(None, _write, out, digest, chunk)
        if head is not None:
            check_header(head, max_line_bytes=max_line_bytes)
        await loop.run_in_executor(None, out.close)
    except BaseException:
        # Shielded: a cancelled handler must still not leave a partial file behind.
        await asyncio.shield(loop.run_in_executor(None, _discard, out, path))
        raise
    return StoredFile(path=path, filename=_display_name(part.filename), size=size,
                      sha256=digest.hexdigest())


async def _file_part(reader: MultipartReader) -> BodyPartReader:
    while (part := await reader.next()) is not None:
        if isinstance(part, BodyPartReader) and part.name == UPLOAD_FIELD:
            return part
        await part.release()  # some other field: skip its bytes
    raise BadRequest(f"the multipart body has no field {UPLOAD_FIELD!r} holding the file")


def _create(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "xb")  # a fresh uuid: never someone else's file


def _write(out, digest, chunk: bytes) -> None:
    digest.update(chunk)
    out.write(chunk)


def _discard(out, path: Path) -> None:
    with contextlib.suppress(OSError):
        out.close()
    path.unlink(missing_ok=True)


def remove(path: Path):
    """Delete a stored upload that no job will read (an awaitable, run on a thread)."""
    return asyncio.get_running_loop().run_in_executor(None, lambda: path.unlink(missing_ok=True))


def _display_name(name: str | None) -> str:
    """The client's file name, for people to read only; it never becomes a path.

    Some clients percent-encode it (aiohttp does), so it is decoded first.
    """
    base = PurePosixPath(unquote(name or "").replace("\\", "/")).name
    base = _UNPRINTABLE.sub("", base).strip()[:255]
    return base or "upload.csv"


async def find_in_import_dir(import_dir: Path, name: str, *, max_line_bytes: int) -> StoredFile:
    """The file `name` inside import_dir, checked like an upload.

    A name that is absolute, climbs with '..', is percent-encoded or holds a
    NUL is refused (400) before the disk is touched; so is one that resolves
    outside the directory through a symlink. A missing file is 404.
    """
    _check_name(name)
    return await asyncio.get_running_loop().run_in_executor(
        None, _inspect, import_dir, name, max_line_bytes)


def _check_name(name: str) -> None:
    if "\x00" in name:
        raise BadRequest("the path holds a NUL byte")
    if _PERCENT_ESCAPE.search(name):
        raise BadRequest("the path is percent-encoded; send the plain file name")
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or name.startswith("~"):
        raise BadRequest("the path must be relative to the import directory, not absolute")
    if ".." in posix.parts:
        raise BadRequest("the path must not climb out of the import directory with '..'")
    if not name.strip() or name.strip() in (".", "/"):
        raise BadRequest("the path names no file")


def _inspect(import_dir: Path, name: str, max_line_bytes: int) -> StoredFile:
    root = import_dir.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root):
        raise BadRequest("the path leads outside the import directory (through a symlink)")
    if not path.exists():
        raise ImportFileNotFound(f"there is no file {name!r} in the import directory")
    if not path.is_file():
        raise BadRequest(f"{name!r} is not a regular file")
    with open(path, "rb") as f:
        size = path.stat().st_size
        check_header(f.read(max_line_bytes), max_line_bytes=max_line_bytes)
    return StoredFile(path=path, filename=name, size=size)
