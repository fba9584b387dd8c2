"""May this process take an upload's bytes now? The free-space floor that multipart
uploads keep too (UPLOAD_MIN_FREE_BYTES); the concurrency cap is the same Slots
(UPLOADS_MAX_CONCURRENT), held by the store around each PATCH."""
from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from ..config import Config
from ..errors import DomainError


class NoSpace(DomainError):
    status = 507


async def admit(config: Config, directory: Path, *, incoming: int) -> None:
    """Refuse (507) bytes that would leave less than UPLOAD_MIN_FREE_BYTES free where uploads are kept."""
    free = await asyncio.to_thread(_free_bytes, directory)
    if free - incoming < config.upload_min_free_bytes:
        raise NoSpace(f"storing {incoming} more bytes would leave less than {config.upload_min_free_bytes} "
                      "bytes free for the server (UPLOAD_MIN_FREE_BYTES)")


def no_space_message(config: Config) -> str:
    return (f"the disk filled while this chunk was written: the server keeps {config.upload_min_free_bytes} "
            "bytes free (UPLOAD_MIN_FREE_BYTES), so none of the chunk was kept")


def _free_bytes(directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(directory).free
