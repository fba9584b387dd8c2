"""Files to import: an upload streamed into IMPORT_DIR/uploads, or a name inside IMPORT_DIR.

An upload never sits in memory: each chunk of the multipart stream goes to
disk (and into its sha256) on a thread, so a 10 GB file costs the server a
chunk's worth of RAM and the event loop never waits on the disk. Content
that is plainly not a customer CSV is refused as soon as its first line is in,
not after gigabytes of it.

An upload is written as `<uuid>.csv.part` and renamed to `<uuid>.csv` only once
its closing boundary has arrived, so a file under the final name is always
whole, whatever happens to the process meanwhile. What a client may make the
server do is bounded: the bytes (UPLOAD_MAX_BYTES), the free space it must
leave (UPLOAD_MIN_FREE_BYTES), the time it may stay silent or nearly so
(UPLOAD_STALL_SECONDS, Pace) and the form fields it may send before the file
(MULTIPART_MAX_PARTS). Concurrent uploads are capped by the caller (Slots).
Any refusal closes the connection rather than read the rest of the body.

The multipart framing is this module's own; the rest (pace, sink, checks,
names, errors) is server/upload_core, which tus uses too.
"""
from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path, PurePosixPath
from typing import TypeVar

from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from aiohttp.helpers import parse_mimetype
from aiohttp.http_exceptions import HttpProcessingError

from .capacity import Busy, Slots
from .config import Config
from .errors import DomainError, NotFound
from .importer import inflate
from .keys import config_key
from .upload_core import disk
from .upload_core.body import CHUNK_BYTES, Pace, refuse_encoded
from .upload_core.checks import UploadLimits, admit, check_header, display_name, readable
from .upload_core.disk import StoredFile, remove
from .upload_core.errors import BadUpload, UploadTooLarge

log = logging.getLogger(__name__)
T = TypeVar("T")

UPLOAD_FIELD = "file"
PARTIAL_SUFFIX = ".csv.part"
MAX_BOUNDARY = 70  # RFC 2046
MAX_FIELD_BYTES = 64 * 1024  # an option field (a mapping of many columns is the largest)
MULTIPART_FRAMING = 64 * 1024  # room beside the file for the multipart framing and small fields
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")

__all__ = ["BadRequest", "ImportFileNotFound", "StoredFile", "UploadLimits", "find_in_import_dir", "remove",
           "save_upload", "slots", "uploads_ctx"]


class BadRequest(DomainError):
    """A path to import that is not one (absolute, climbing out, not a file)."""

    status = 400


class ImportFileNotFound(NotFound):
    pass


def slots(config: Config) -> Slots:
    """This process's upload slots (UPLOADS_MAX_CONCURRENT)."""
    return Slots(config.uploads_max_concurrent, lambda limit: Busy(
        f"{limit} uploads are already in progress on this server (UPLOADS_MAX_CONCURRENT); "
        "try again shortly", retry_after=30, close_connection=True))


async def save_upload(request: web.Request, upload_dir: Path, limits: UploadLimits) -> StoredFile:
    """Stream the `file` field of a multipart request to a new file under upload_dir.

    Nothing is left on any failure: a client that goes away mid-upload
    surfaces here as ClientGone (or a cancellation), which removes the
    partial file like any other failure.
    """
    try:
        return await _save(request, upload_dir, limits)
    except DomainError as exc:
        exc.close_connection = True  # the rest of the body may still be on its way: unwanted
        raise


async def _save(request: web.Request, upload_dir: Path, limits: UploadLimits) -> StoredFile:
    refuse_encoded(request)
    if request.content_length is not None:
        limits.check_size(request.content_length - MULTIPART_FRAMING)
        await admit(upload_dir, request.content_length, limits.min_free_bytes)
    reader = _multipart_reader(request)
    pace = Pace(request.content, limits.stall_seconds)
    fields: dict[str, str] = {}
    part = await _file_part(reader, pace, limits, fields)
    name = uuid.uuid4().hex
    partial = upload_dir / f"{name}{PARTIAL_SUFFIX}"
    loop = asyncio.get_running_loop()
    out = await loop.run_in_executor(None, disk.create, partial)
    sink = disk.Sink(out, hashlib.sha256(), min_free_bytes=limits.min_free_bytes)
    head: bytes | None = b""
    try:
        while not part.at_eof():
            chunk = await pace.step(_read(part.read_chunk(CHUNK_BYTES)))
            limits.check_size(sink.written + len(chunk))
            if head is not None:
                head += chunk
                # A gzip head is only read once there is enough of it to inflate the first line.
                if (b"\n" in head and not head.startswith(inflate.MAGIC)) or len(head) >= limits.max_line_bytes:
                    await loop.run_in_executor(None, _check_head, head, limits)
                    head = None
            await sink.write(chunk)
        if head is not None:
            await loop.run_in_executor(None, _check_head, head, limits)
        await _form_fields(reader, pace, limits, fields)  # and the boundary after the file must be there
        await loop.run_in_executor(None, disk.durable, out)
        path = await loop.run_in_executor(None, disk.put_in_place, partial, disk.final_path(upload_dir, name))
    except BaseException:
        # Shielded: a cancelled handler must still not leave a partial file behind.
        await disk.shielded(sink.settled())
        await disk.shielded(loop.run_in_executor(None, disk.discard, out, partial))
        raise
    return StoredFile(path=path, filename=display_name(part.filename), size=sink.written,
                      sha256=sink.digests[0].hexdigest(), fields=fields)


def _multipart_reader(request: web.Request) -> MultipartReader:
    boundary = parse_mimetype(request.headers.get(hdrs.CONTENT_TYPE, "")).parameters.get("boundary", "")
    if not boundary:
        raise BadUpload("the multipart Content-Type names no boundary")
    if len(boundary) > MAX_BOUNDARY:
        raise BadUpload(f"the multipart boundary is longer than {MAX_BOUNDARY} characters")
    return MultipartReader(request.headers, request.content, max_field_size=8190, max_headers=32)


async def _read(step: Awaitable[T]) -> T:
    """One step of the multipart reader; what it finds malformed is the client's error."""
    try:
        return await step
    except HttpProcessingError as exc:
        raise BadUpload(f"a multipart part has a malformed header: {exc.message}") from None
    except ValueError as exc:  # aiohttp's word for a boundary it cannot find
        raise BadUpload(f"the multipart body does not follow its boundary (it may be cut short): "
                        f"{exc}") from None


async def _file_part(reader: MultipartReader, pace: Pace, limits: UploadLimits,
                     fields: dict[str, str]) -> BodyPartReader:
    """The `file` part, among the first max_parts parts; the small fields before it go to `fields`.

    Every part's headers are parsed on the loop; the cap and a yield after each
    part keep a body of thousands of empty parts from holding the loop.
    """
    for _ in range(limits.max_parts):
        part = await pace.step(_read(reader.next()))
        if part is None:
            break
        if isinstance(part, BodyPartReader) and part.name == UPLOAD_FIELD:
            return part
        await _field(part, pace, fields)
        await asyncio.sleep(0)
    else:
        raise UploadTooLarge(f"the field {UPLOAD_FIELD!r} must come within the first "
                             f"{limits.max_parts} parts of the multipart body (MULTIPART_MAX_PARTS)")
    raise BadUpload(f"the multipart body has no field {UPLOAD_FIELD!r} holding the file")


async def _form_fields(reader: MultipartReader, pace: Pace, limits: UploadLimits,
                       fields: dict[str, str]) -> None:
    """The fields after the file, up to the closing boundary."""
    for _ in range(limits.max_parts):
        part = await pace.step(_read(reader.next()))
        if part is None:
            return
        await _field(part, pace, fields)
        await asyncio.sleep(0)
    raise UploadTooLarge(f"the multipart body has more than {limits.max_parts} parts (MULTIPART_MAX_PARTS)")


async def _field(part, pace: Pace, fields: dict[str, str]) -> None:
    """A small text field (an import option) is kept; anything else is skipped."""
    if isinstance(part, BodyPartReader) and part.name and part.filename is None and part.name != UPLOAD_FIELD:
        value = await pace.step(_read(part.read(decode=False)))
        if len(value) > MAX_FIELD_BYTES:
            raise BadUpload(f"the form field {part.name!r} is longer than {MAX_FIELD_BYTES} bytes")
        fields[part.name] = value.decode("utf-8", "replace")
        return
    await pace.step(_read(part.release()))  # some other part: skip its bytes


def _check_head(head: bytes, limits: UploadLimits) -> None:
    check_header(head, max_line_bytes=limits.max_line_bytes)


def remove_stale_partials(upload_dir: Path, older_than: float) -> int:
    """Delete partial files nobody has written for `older_than` seconds (a process died mid-upload).

    A live upload writes at least every UPLOAD_STALL_SECONDS or is dropped, so
    an older partial file belongs to no one, whichever process made it.
    """
    stale = disk.stale(upload_dir, PARTIAL_SUFFIX, older_than)
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


async def uploads_ctx(app: web.Application) -> AsyncIterator[None]:
    """At start, clear what uploads cut short by a crash left behind."""
    config = app[config_key]
    removed = await asyncio.to_thread(remove_stale_partials, config.import_dir / "uploads",
                                      2 * config.upload_stall_seconds)
    if removed:
        log.info("removed %d partial uploads left by a process that stopped mid-upload", removed)
    yield


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
    try:
        return _inspect_path(import_dir, name, max_line_bytes)
    except RuntimeError as exc:  # Path.resolve's word for a symlink loop (Python 3.11)
        raise BadRequest(f"the path {name!r} leads into a symlink loop") from exc
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise BadRequest("the path is too long for the file system") from None
        if exc.errno == errno.ELOOP:
            raise BadRequest(f"the path {name!r} leads into a symlink loop") from None
        # Only the reason: the server's own directories are nobody else's business.
        raise BadRequest(f"{name!r} cannot be read: {exc.strerror}") from None


def _inspect_path(import_dir: Path, name: str, max_line_bytes: int) -> StoredFile:
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
    return StoredFile(path=path, filename=readable(name) or path.name, size=size)
