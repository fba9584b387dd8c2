"""What an upload is checked against: its size and the room on disk, the import engine's
header rules on its first line, and the name people will see."""
from __future__ import annotations

import asyncio
import dataclasses
import unicodedata
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

from ..config import Config
from ..importer import inflate
from ..importer.parse import FileRejected, NotCsvText, parse_header
from .disk import free_bytes
from .errors import BadCsvHeader, NoRoom, UnsupportedUpload, UploadTooLarge

# Controls, format characters (bidi overrides and isolates, zero-width ones) and
# line separators: invisible in a name, or able to make it read as another one.
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


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

    def check_size(self, size: int) -> None:
        if size > self.max_bytes:
            raise UploadTooLarge(f"the upload is larger than the limit of {self.max_bytes} bytes")


async def admit(directory: Path, incoming: int, min_free_bytes: int, *, announced: int = 0) -> None:
    """Refuse (507) `incoming` bytes that would leave less than the floor free, once the
    bytes other uploads have `announced` and not sent yet have come too."""
    free = await asyncio.to_thread(free_bytes, directory)
    if free - announced - incoming >= min_free_bytes:
        return
    if announced:
        raise NoRoom(f"not enough free disk space for {incoming} more bytes: {free} bytes are free, and the "
                     f"uploads not finished yet have announced {announced} bytes still to come; the import "
                     f"directory must keep {min_free_bytes} bytes free (UPLOAD_MIN_FREE_BYTES)")
    raise NoRoom.below_floor(min_free_bytes)


def check_header(head: bytes, *, max_line_bytes: int) -> None:
    """Refuse content whose first line cannot be a customer CSV header: the engine's own rules."""
    try:
        parse_header(inflate.head(head, max_line_bytes), max_line_bytes)
    except NotCsvText as exc:
        raise UnsupportedUpload(str(exc)) from None
    except FileRejected as exc:
        raise BadCsvHeader(str(exc)) from None


def check_file_head(path: Path, max_line_bytes: int) -> None:
    """check_header on a stored file's first bytes (blocking: call from a thread)."""
    with open(path, "rb") as f:
        check_header(f.read(max_line_bytes), max_line_bytes=max_line_bytes)


def display_name(name: str | None) -> str:
    """The client's file name, for people to read only; it never becomes a path.

    Some clients percent-encode it (aiohttp does), so it is decoded first.
    """
    base = readable(PurePosixPath(unquote(name or "").replace("\\", "/")).name)[:255]
    return base or "upload.csv"


def readable(name: str) -> str:
    """A name as people should see it: no invisible or direction-changing characters."""
    return "".join(ch for ch in name if unicodedata.category(ch) not in _INVISIBLE).strip()
