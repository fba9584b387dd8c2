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
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import hashlib
import logging
import os
import re
import shutil
import time
import unicodedata
import uuid
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path, PurePosixPath
from typing import TypeVar
from urllib.parse import unquote

from aiohttp import BodyPartReader, MultipartReader, StreamReader, hdrs, web
from aiohttp.helpers import parse_mimetype
from aiohttp.http_exceptions import HttpProcessingError

from .capacity import Busy, Slots
from .config import Config
from .errors import DomainError, NotFound
from .importer import inflate
from .importer.parse import FileRejected, NotCsvText, parse_header
from .keys import config_key

log = logging.getLogger(__name__)
T = TypeVar("T")

CHUNK_BYTES = 256 * 1024
UPLOAD_FIELD = "file"
PARTIAL_SUFFIX = ".part"
MAX_BOUNDARY = 70  # RFC 2046
MAX_FIELD_BYTES = 64 * 1024  # an option field (a mapping of many columns is the largest)
# What a body must bring in every UPLOAD_STALL_SECONDS (about 1 KB/s at the default 60 s):
# a client that trickles a byte now and then holds a slot and a file as surely as a silent one.
MIN_PACE_BYTES = 64 * 1024
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
# Controls, format characters (bidi overrides and isolates, zero-width ones) and
# line separators: invisible in a name, or able to make it read as another one.
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


class BadRequest(DomainError):
    status = 400


class MalformedUpload(DomainError):
    status = 400


class UploadTooLarge(DomainError):
    status = 413


class EncodedUpload(DomainError):
    status = 415


class NoRoom(DomainError):
    status = 507


class UploadStalled(DomainError):
    status = 408


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
    fields: dict[str, str] = dataclasses.field(default_factory=dict)  # the form's other fields (options)


@dataclasses.dataclass(frozen=True)
class UploadLimits:
    max_bytes: int
    max_line_bytes: int
    min_free_bytes: int
    stall_seconds: float
    max_parts: int

    @classmethod
    def of(cls, config: Config) -> UploadLimits:
        return cls(max_bytes=config.upload_max_bytes, max_line_bytes=config.max_record_bytes,
                   min_free_bytes=config.upload_min_free_bytes,
                   stall_seconds=config.upload_stall_seconds, max_parts=config.multipart_max_parts)


def slots(config: Config) -> Slots:
    """This process's upload slots (UPLOADS_MAX_CONCURRENT)."""
    return Slots(config.uploads_max_concurrent, lambda limit: Busy(
        f"{limit} uploads are already in progress on this server (UPLOADS_MAX_CONCURRENT); "
        "try again shortly", retry_after=30, close_connection=True))


def check_header(head: bytes, *, max_line_bytes: int) -> None:
    """Refuse content whose first line cannot be a customer CSV header: the engine's own rules."""
    try:
        parse_header(inflate.head(head, max_line_bytes), max_line_bytes)
    except NotCsvText as exc:
        raise NotCsv(str(exc)) from None
    except FileRejected as exc:
        raise BadCsvHeader(str(exc)) from None


async def save_upload(request: web.Request, upload_dir: Path, limits: UploadLimits) -> StoredFile:
    """Stream the `file` field of a multipart request to a new file under upload_dir.

    Nothing is left on any failure: a client that goes away mid-upload
    surfaces here as an exception (or a cancellation), which removes the
    partial file like any other failure.
    """
    try:
        return await _save(request, upload_dir, limits)
    except DomainError as exc:
        exc.close_connection = True  # the rest of the body may still be on its way: unwanted
        raise


async def _save(request: web.Request, upload_dir: Path, limits: UploadLimits) -> StoredFile:
    refuse_encoded(request)
    loop = asyncio.get_running_loop()
    free = await loop.run_in_executor(None, _free_bytes, upload_dir)
    _check_declared_length(request.content_length, free, limits)
    reader = _multipart_reader(request)
    pace = Pace(request.content, limits.stall_seconds)
    fields: dict[str, str] = {}
    part = await _file_part(reader, pace, limits, fields)
    name = uuid.uuid4().hex
    partial = upload_dir / f"{name}.csv{PARTIAL_SUFFIX}"
    out = await loop.run_in_executor(None, _create, partial)
    digest = hashlib.sha256()
    size = 0
    head = b""
    try:
        while not part.at_eof():
            chunk = await pace.step(_read(part.read_chunk(CHUNK_BYTES)))
            size += len(chunk)
            if size > limits.max_bytes:
                raise UploadTooLarge(f"the upload is larger than the limit of {limits.max_bytes} bytes")
            if head is not None:
                head += chunk
                # A gzip head is only read once there is enough of it to inflate the first line.
                if (b"\n" in head and not head.startswith(inflate.MAGIC)) or len(head) >= limits.max_line_bytes:
                    await loop.run_in_executor(None, _check_head, head, limits)
                    head = None
            free = await loop.run_in_executor(None, _write, out, digest, chunk, upload_dir)
            if free < limits.min_free_bytes:
                raise _no_room(limits)
        if head is not None:
            await loop.run_in_executor(None, _check_head, head, limits)
        await _form_fields(reader, pace, limits, fields)  # and the boundary after the file must be there
        path = upload_dir / f"{name}.csv"
        await loop.run_in_executor(None, _finish, out, partial, path)
    except BaseException:
        # Shielded: a cancelled handler must still not leave a partial file behind.
        await asyncio.shield(loop.run_in_executor(None, _discard, out, partial))
        raise
    return StoredFile(path=path, filename=_display_name(part.filename), size=size,
                      sha256=digest.hexdigest(), fields=fields)


def refuse_encoded(request: web.Request) -> None:
    # aiohttp would inflate a gzip body before we see it, so a small request could
    # write a file a thousand times its size past every byte limit.
    coding = request.headers.get(hdrs.CONTENT_ENCODING, "identity").strip().lower()
    if coding not in ("", "identity"):
        raise EncodedUpload(f"uploads are not accepted with Content-Encoding {coding!r}: send the file "
                            "as it is (a compressed .gz file is a file like any other)")


def _check_declared_length(length: int | None, free: int, limits: UploadLimits) -> None:
    if length is None:
        return
    if length > limits.max_bytes + 64 * 1024:  # room for the multipart framing and small fields
        raise UploadTooLarge(f"the upload is larger than the limit of {limits.max_bytes} bytes")
    if free - length < limits.min_free_bytes:
        raise _no_room(limits)


def _no_room(limits: UploadLimits) -> NoRoom:
    return NoRoom(f"not enough free disk space for this upload: the import directory must keep "
                  f"{limits.min_free_bytes} bytes free (UPLOAD_MIN_FREE_BYTES)")


def _multipart_reader(request: web.Request) -> MultipartReader:
    boundary = parse_mimetype(request.headers.get(hdrs.CONTENT_TYPE, "")).parameters.get("boundary", "")
    if not boundary:
        raise MalformedUpload("the multipart Content-Type names no boundary")
    if len(boundary) > MAX_BOUNDARY:
        raise MalformedUpload(f"the multipart boundary is longer than {MAX_BOUNDARY} characters")
    return MultipartReader(request.headers, request.content, max_field_size=8190, max_headers=32)


async def _read(step: Awaitable[T]) -> T:
    """One step of the multipart reader; what it finds malformed is the client's error."""
    try:
        return await step
    except HttpProcessingError as exc:
        raise MalformedUpload(f"a multipart part has a malformed header: {exc.message}") from None
    except ValueError as exc:  # aiohttp's word for a boundary it cannot find
        raise MalformedUpload(f"the multipart body does not follow its boundary (it may be cut short): "
                              f"{exc}") from None


class Pace:
    """What a request body must keep up: something within every `seconds`, and at least
    `min_bytes` over each such period. Silence and a trickle are both dropped (408).

    Progress is the bytes the connection has brought (`total_bytes` of the request's
    stream), whatever the reader makes of them, so part headers count as much as a file.
    """

    def __init__(self, stream: StreamReader, seconds: float, min_bytes: int = MIN_PACE_BYTES) -> None:
        self.stream = stream
        self.seconds = seconds
        self.min_bytes = min_bytes
        self._since = time.monotonic()
        self._mark = stream.total_bytes

    async def step(self, step: Awaitable[T]) -> T:
        """Await one read of the body, within the pace."""
        try:
            async with asyncio.timeout(self.seconds):
                result = await step
        except TimeoutError:
            raise UploadStalled(f"the upload sent nothing for {self.seconds:g} seconds "
                                "(UPLOAD_STALL_SECONDS) and was dropped") from None
        now = time.monotonic()
        if now - self._since >= self.seconds:
            if self.stream.total_bytes - self._mark < self.min_bytes:
                raise UploadStalled(f"the upload sent less than {self.min_bytes} bytes in "
                                    f"{self.seconds:g} seconds (UPLOAD_STALL_SECONDS) and was dropped")
            self._since, self._mark = now, self.stream.total_bytes
        return result


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
    raise MalformedUpload(f"the multipart body has no field {UPLOAD_FIELD!r} holding the file")


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
            raise MalformedUpload(f"the form field {part.name!r} is longer than {MAX_FIELD_BYTES} bytes")
        fields[part.name] = value.decode("utf-8", "replace")
        return
    await pace.step(_read(part.release()))  # some other part: skip its bytes


def _check_head(head: bytes, limits: UploadLimits) -> None:
    check_header(head, max_line_bytes=limits.max_line_bytes)


def _free_bytes(folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(folder).free


def _create(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "xb")  # a fresh uuid: never someone else's file


def _write(out, digest, chunk: bytes, folder: Path) -> int:
    """Append a chunk; return the free space left (statvfs: cheap beside the write)."""
    digest.update(chunk)
    out.write(chunk)
    return shutil.disk_usage(folder).free


def _finish(out, partial: Path, path: Path) -> None:
    out.flush()
    os.fsync(out.fileno())  # the whole file is on disk before it has its final name
    out.close()
    os.replace(partial, path)


def _discard(out, path: Path) -> None:
    with contextlib.suppress(OSError):
        out.close()
    path.unlink(missing_ok=True)


def remove_stale_partials(upload_dir: Path, older_than: float) -> int:
    """Delete `.part` files nobody has written for `older_than` seconds (a process died mid-upload).

    A live upload writes at least every UPLOAD_STALL_SECONDS or is dropped, so
    an older partial file belongs to no one, whichever process made it.
    """
    removed = 0
    cutoff = time.time() - older_than
    with contextlib.suppress(FileNotFoundError):
        for path in upload_dir.glob(f"*{PARTIAL_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
    return removed


async def uploads_ctx(app: web.Application) -> AsyncIterator[None]:
    """At start, clear what uploads cut short by a crash left behind."""
    config = app[config_key]
    removed = await asyncio.to_thread(remove_stale_partials, config.import_dir / "uploads",
                                      2 * config.upload_stall_seconds)
    if removed:
        log.info("removed %d partial uploads left by a process that stopped mid-upload", removed)
    yield


def remove(path: Path):
    """Delete a stored upload that no job will read (an awaitable, run on a thread)."""
    return asyncio.get_running_loop().run_in_executor(None, lambda: path.unlink(missing_ok=True))


def _display_name(name: str | None) -> str:
    """The client's file name, for people to read only; it never becomes a path.

    Some clients percent-encode it (aiohttp does), so it is decoded first.
    """
    base = readable(PurePosixPath(unquote(name or "").replace("\\", "/")).name)[:255]
    return base or "upload.csv"


def readable(name: str) -> str:
    """A name as people should see it: no invisible or direction-changing characters."""
    return "".join(ch for ch in name if unicodedata.category(ch) not in _INVISIBLE).strip()


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
