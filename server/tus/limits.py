"""May this process take an upload's bytes now? Free space and concurrency.

One small function, so that it can be pointed at the limits multipart
uploads use (POST /import) when both exist: the same floor, the same cap.
"""
from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from ..config import Config
from ..errors import DomainError

RETRY_AFTER_SECONDS = 5


class TooManyUploads(DomainError):
    status = 429

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(RETRY_AFTER_SECONDS)}


class NoSpace(DomainError):
    status = 507


async def admit(config: Config, directory: Path, *, incoming: int, in_flight: int) -> None:
    """Refuse (429) past TUS_MAX_CONCURRENT writes in this process, and (507) bytes
    that would leave less than TUS_MIN_FREE_BYTES free where uploads are kept."""
    if in_flight >= config.tus_max_concurrent:
        raise TooManyUploads(f"{in_flight} uploads are being written by this server already; "
                             f"try again in {RETRY_AFTER_SECONDS} s")
    free = await asyncio.to_thread(_free_bytes, directory)
    if free - incoming < config.tus_min_free_bytes:
        raise NoSpace(f"storing {incoming} more bytes would leave less than {config.tus_min_free_bytes} "
                      "bytes free for the server")


def _free_bytes(directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(directory).free
