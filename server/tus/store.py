"""Resumable uploads: a row in `uploads` per upload, its bytes in IMPORT_DIR/uploads.

Each upload has an advisory lock in PostgreSQL. A PATCH, a DELETE, an import
and the sweep take it without waiting (busy: 423), so two writers never
interleave, in one process or across many, and a process that dies mid-PATCH
drops it with its connection. The lock is a session lock, not a transaction:
a PATCH may stream for minutes and must not hold a transaction open meanwhile.

Bytes go to disk a buffer at a time on a thread; the offset is committed only
after they are fsynced, so after any crash the file holds at least what the
row counts (anything past it is cut off by the next PATCH).
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aiopg
from aiohttp import StreamReader

from ..capacity import Slots
from ..config import Config
from ..errors import Conflict
from ..sqlfiles import queries
from ..upload_core import disk
from ..upload_core.body import Body
from ..upload_core.checks import admit, check_file_head
from ..upload_core.disk import Sink, StoredFile, shielded
from ..upload_core.errors import ClientGone, NoRoom, TooManyUploads, UploadTooLarge
from . import files
from .protocol import ChecksumMismatch, OffsetMismatch, UploadBusy, UploadGone, UploadNotFound

log = logging.getLogger(__name__)
SQL = queries("uploads")
SWEEP_BATCH = 1000
HASHES_KEPT = 1000


class UploadIncomplete(Conflict):
    def __init__(self, upload: Upload) -> None:
        super().__init__(f"upload {upload.id} has {upload.offset} of its {upload.size} bytes; "
                         "finish it before importing it")


@dataclasses.dataclass(frozen=True)
class Upload:
    id: str
    filename: str
    size: int
    offset: int
    metadata: str | None
    owner: str | None
    expires: datetime
    sha256: str | None
    expired: bool

    @property
    def complete(self) -> bool:
        return self.offset == self.size


class Uploads:
    def __init__(self, config: Config, pool: aiopg.Pool, slots: Slots) -> None:
        self.config = config
        self.pool = pool
        self.slots = slots  # shared with multipart uploads: one cap on uploads in progress
        self.directory = config.import_dir / "uploads"
        # sha256 of the bytes so far, for uploads this process is writing: (offset, hash).
        # Another process, or a restart, means hashing the file once at the end instead.
        self._sha256: dict[str, tuple[int, Any]] = {}

    async def create(self, *, size: int, filename: str, metadata: str | None, owner: str | None) -> Upload:
        """A new upload, within the caller's cap and the disk's room for what every live upload announced."""
        upload_id = uuid.uuid4().hex
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            async with cur.begin():
                await cur.execute(SQL["take_turns"])
                announced = await self._within_cap(cur, owner)
                await admit(self.directory, size, self.config.upload_min_free_bytes, announced=announced)
                await cur.execute(SQL["create"], {"id": upload_id, "filename": filename, "size": size,
                                                  "metadata": metadata, "owner": owner,
                                                  "ttl": self.config.tus_expire_seconds})
                (expires,) = await cur.fetchone()
        # After the row: a crash in between leaves a row without a file, which the sweep removes.
        await asyncio.to_thread(files.create, self.directory, upload_id)
        return Upload(upload_id, filename, size, 0, metadata, owner, expires, None, False)

    async def adopt(self, stored: StoredFile, owner: str | None) -> str:
        """A file received whole (the preview's multipart upload) as a complete upload; its id.

        The multipart writer names its files <uuid hex>.csv in this same directory,
        which is the final name of the upload with that id: nothing moves.
        """
        upload_id = stored.path.stem
        if files.final_path(self.directory, upload_id) != stored.path:
            raise ValueError(f"{stored.path.name} is not a file of the upload directory")
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            async with cur.begin():
                # A kept preview is one of the owner's uploads: the same cap, counted in turn.
                await cur.execute(SQL["take_turns"])
                await self._within_cap(cur, owner)
                await cur.execute(SQL["adopt"], {"id": upload_id, "filename": stored.filename,
                                                 "size": stored.size, "owner": owner, "sha256": stored.sha256,
                                                 "ttl": self.config.tus_expire_seconds})
        return upload_id

    async def _within_cap(self, cur, owner: str | None) -> int:
        """TooManyUploads when `owner` holds UPLOADS_MAX_PER_USER live uploads; else the bytes
        every unfinished upload still announces. Inside the transaction that takes turns."""
        await cur.execute(SQL["held"], {"owner": owner})
        mine, announced = await cur.fetchone()
        if mine >= self.config.uploads_max_per_user:
            raise TooManyUploads(
                f"{owner or 'this user'} already holds {mine} uploads, the most one user may "
                f"(UPLOADS_MAX_PER_USER is {self.config.uploads_max_per_user}): import or "
                "DELETE one first, or wait until an unused one expires")
        return announced

    async def path_of(self, upload_id: str) -> StoredFile:
        """A complete upload's file, to read (the preview); it stays an upload."""
        upload = await self.get(upload_id)
        if not upload.complete:
            raise UploadIncomplete(upload)
        path = await asyncio.to_thread(files.finish, self.directory, upload_id)
        return StoredFile(path=path, filename=upload.filename, size=upload.size, sha256=upload.sha256)

    async def get(self, upload_id: str) -> Upload:
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            return await _live_row(cur, upload_id)

    async def write(self, upload_id: str, offset: int, body: StreamReader, *,
                    length: int | None, checksum: tuple[str, bytes] | None) -> Upload:
        """Append the request body at `offset`; the upload as it is afterwards."""
        with self.slots.hold():  # taken before the first await: two requests never share the last place
            await admit(self.directory, length or 0, self.config.upload_min_free_bytes)
            async with self._locked(upload_id) as cur:
                upload = await _live_row(cur, upload_id)
                if offset != upload.offset:
                    raise OffsetMismatch(offset, upload.offset)
                if upload.complete:
                    return upload  # and its part file is the final one already
                if length is not None and offset + length > upload.size:
                    raise UploadTooLarge(f"the chunk would end at byte {offset + length}, past the "
                                         f"upload's Upload-Length of {upload.size}")
                return await self._append(cur, upload, body, checksum)

    async def _append(self, cur, upload: Upload, body: StreamReader,
                      checksum: tuple[str, bytes] | None) -> Upload:
        loop = asyncio.get_running_loop()
        try:
            out = await loop.run_in_executor(None, files.open_at, self.directory, upload.id, upload.offset)
        except (FileNotFoundError, files.FileLost):
            # Someone removed or cut the file behind our back: its bytes cannot be trusted.
            await self._remove(cur, upload.id)
            raise UploadGone(f"the stored bytes of upload {upload.id} were lost; start it again") from None
        cached = self._sha256.get(upload.id)
        running: Any = None
        if upload.offset == 0:
            running = hashlib.sha256()
        elif cached and cached[0] == upload.offset:
            running = cached[1].copy()
        algorithm, expected = checksum or ("", b"")
        check = hashlib.new(algorithm) if algorithm else None
        sink = Sink(out, running, check, min_free_bytes=self.config.upload_min_free_bytes)
        received = Body(body, self.config.upload_stall_seconds)
        try:
            async for buffer in received.buffers():
                if upload.offset + sink.written + len(buffer) > upload.size:
                    raise UploadTooLarge(f"the body runs past the upload's Upload-Length of {upload.size}")
                await sink.write(buffer)  # a body of no stated length keeps the floor too
            if check is not None and check.digest() != expected:
                raise ChecksumMismatch(algorithm)
        except (ChecksumMismatch, UploadTooLarge, NoRoom, OSError):  # refused, or the disk failed: none counts
            await shielded(loop.run_in_executor(None, disk.cut_back, out, upload.offset))
            raise
        except BaseException as exc:
            # The client went away (aiohttp may cancel the handler), or the server is
            # stopping. The core protocol asks to keep what arrived; a chunk with a
            # checksum cannot be verified, so none of it is kept.
            await sink.settled()
            leftover = received.leftover()
            if check is None and upload.offset + sink.written + len(leftover) <= upload.size:
                await shielded(loop.run_in_executor(None, sink.write_now, leftover))
            if check is not None or sink.written == 0:
                await shielded(loop.run_in_executor(None, disk.cut_back, out, upload.offset))
                kept = upload
            else:
                kept = await shielded(self._commit(cur, loop, out, upload, sink.written, running))
            if isinstance(exc, ClientGone):
                return kept  # nobody hears the answer
            raise
        return await self._commit(cur, loop, out, upload, sink.written, running)

    async def _commit(self, cur, loop, out, upload: Upload, written: int, running) -> Upload:
        await loop.run_in_executor(None, disk.durable, out)
        offset = upload.offset + written
        sha256 = None
        if offset == upload.size:
            self._sha256.pop(upload.id, None)
            if running is not None:
                sha256 = running.hexdigest()
            else:
                sha256 = await asyncio.to_thread(disk.sha256_of, files.part_path(self.directory, upload.id))
        await cur.execute(SQL["advance"], {"id": upload.id, "from": upload.offset, "offset": offset,
                                           "sha256": sha256, "ttl": self.config.tus_expire_seconds})
        (expires,) = await cur.fetchone()  # the lock makes the row ours: it is there
        if sha256 is not None:
            await asyncio.to_thread(files.finish, self.directory, upload.id)
        elif running is not None:
            self._sha256.pop(upload.id, None)  # to the end of the line, the latest
            self._sha256[upload.id] = (offset, running)
            while len(self._sha256) > HASHES_KEPT:  # uploads another process finished, or abandoned
                del self._sha256[next(iter(self._sha256))]
        return dataclasses.replace(upload, offset=offset, expires=expires, sha256=sha256)

    async def delete(self, upload_id: str) -> None:
        async with self._locked(upload_id) as cur:
            await _row(cur, upload_id)  # 404 when unknown; an expired one may be deleted
            await self._remove(cur, upload_id)

    @contextlib.asynccontextmanager
    async def claim(self, upload_id: str) -> AsyncIterator[StoredFile]:
        """A complete upload as a file to import; it stops being an upload when the block ends
        without an error (its row goes, its file is the job's), and stays one otherwise."""
        async with self._locked(upload_id) as cur:
            upload = await _live_row(cur, upload_id)
            if not upload.complete:
                raise UploadIncomplete(upload)
            path = await asyncio.to_thread(files.finish, self.directory, upload_id)
            await asyncio.to_thread(check_file_head, path, self.config.max_record_bytes)
            yield StoredFile(path=path, filename=upload.filename, size=upload.size, sha256=upload.sha256)
            await cur.execute(SQL["delete"], {"id": upload_id})

    async def sweep(self) -> int:
        """Remove expired uploads (rows and files) and part files no row knows; how many went."""
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(SQL["expired"], {"limit": SWEEP_BATCH})
            expired = [row[0] for row in await cur.fetchall()]
        removed = 0
        for upload_id in expired:
            with contextlib.suppress(UploadBusy, UploadNotFound):  # being written or gone: not now
                async with self._locked(upload_id) as cur:
                    if (await _row(cur, upload_id)).expired:
                        await self._remove(cur, upload_id)
                        removed += 1
        return removed + await self._sweep_orphans()

    async def _sweep_orphans(self) -> int:
        stale = await asyncio.to_thread(files.stale_parts, self.directory, self.config.tus_expire_seconds)
        if not stale:
            return 0
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(SQL["known"], {"ids": stale})
            known = {row[0] for row in await cur.fetchall()}
        orphans = [upload_id for upload_id in stale if upload_id not in known]
        for upload_id in orphans:
            await asyncio.to_thread(files.part_path(self.directory, upload_id).unlink, missing_ok=True)
        return len(orphans)

    async def _remove(self, cur, upload_id: str) -> None:
        await cur.execute(SQL["delete"], {"id": upload_id})
        self._sha256.pop(upload_id, None)
        await asyncio.to_thread(files.remove, self.directory, upload_id)

    @contextlib.asynccontextmanager
    async def _locked(self, upload_id: str) -> AsyncIterator[Any]:
        """A cursor on a connection that holds the upload's lock; UploadBusy if another does."""
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(SQL["try_lock"], {"id": upload_id})
            if not (await cur.fetchone())[0]:
                raise UploadBusy(upload_id)
            try:
                yield cur
            finally:
                try:
                    await cur.execute(SQL["unlock"], {"id": upload_id})
                except asyncio.CancelledError:
                    conn.close()  # the session ends, and its lock with it
                    raise
                except Exception as exc:  # what was done is committed; only the lock is left
                    conn.close()
                    log.warning("upload %s: unlocked by closing its connection (%s)", upload_id, exc)


async def _row(cur, upload_id: str) -> Upload:
    await cur.execute(SQL["get"], {"id": upload_id})
    row = await cur.fetchone()
    if row is None:
        raise UploadNotFound(upload_id)
    return Upload(*row)


async def _live_row(cur, upload_id: str) -> Upload:
    upload = await _row(cur, upload_id)
    if upload.expired:
        raise UploadGone(f"upload {upload_id} expired at {upload.expires.isoformat()}; start it again")
    return upload
