"""Resumable uploads with the tus 1.0.0 protocol at /uploads (views in server/views/tus.py).

An adapter over server/upload_core (body pacing, the write-hash-free-space
sink, header checks, names, errors), as multipart uploads are: protocol.py
speaks the protocol's headers and errors, store.py keeps uploads (rows, locks,
offsets, per-user caps), files.py names an upload's files on disk, and tus_ctx
owns the periodic sweep of expired uploads.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from ..keys import config_key, pool_key, tus_key, uploads_key
from ..tasks import cancel_and_wait
from .protocol import protocol_headers
from .store import Uploads

log = logging.getLogger(__name__)


async def tus_ctx(app: web.Application) -> AsyncIterator[None]:
    """The uploads store, and its sweep running every TUS_SWEEP_SECONDS while the app lives."""
    config = app[config_key]
    uploads = Uploads(config, app[pool_key], app[uploads_key])
    app[tus_key] = uploads
    sweeper = asyncio.create_task(_sweep_forever(uploads, config.tus_sweep_seconds), name="tus-sweep")
    yield
    await cancel_and_wait(sweeper)


async def _sweep_forever(uploads: Uploads, interval: float) -> None:
    while True:
        try:
            if removed := await uploads.sweep():
                log.info("swept %d expired or abandoned uploads", removed)
        except Exception:  # a database restart, a full disk: next time, then
            log.exception("the upload sweep failed")
        await asyncio.sleep(interval)


__all__ = ["Uploads", "protocol_headers", "tus_ctx"]
