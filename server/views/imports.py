"""/import and /import/preview: a file in, its detected options, a queued job (or a preview).

The jobs themselves, read and controlled, are import_jobs.py's; the bodies and
errors are import_models.py's.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from .. import uploads
from ..auth.middleware import principal
from ..auth.roles import Role, requires
from ..config import Config
from ..errors import DomainError
from ..importer import jobs
from ..importer.dates import DateFormatUnclear
from ..importer.detect import Detected, detect_file
from ..importer.header import EncodingUnclear, FileRejected, NotCsvText
from ..importer.preview import preview_file
from ..keys import config_key, pool_key, runner_key, tus_key, uploads_key
from ..openapi import describe
from ..upload_core.errors import UnsupportedUpload
from .import_models import (Error, ImportOptions, ImportSource, ImportUpload, JobConflict, NotAnImportPath, Preview,
                            StartedJob, UnclearDates, UnclearEncoding, UnreadableFile, UnsupportedBody)

routes = web.RouteTableDef()
TAGS = ("imports",)


@routes.post("/import")
@requires(Role.admin)
@describe("Start an import: JSON {\"path\"} naming a file in the import directory, "
          "JSON {\"upload\"} naming a finished upload (/uploads), "
          "or a multipart/form-data upload with the file in the field `file`; "
          "options (encoding, delimiter, date_format, mapping, dry_run) beside them",
          body=ImportSource, tags=TAGS,
          responses={202: StartedJob, 400: Error, 404: Error, 408: Error, 409: JobConflict, 410: Error,
                     413: Error, 415: Error, 422: Error, 423: Error, 429: Error, 507: Error})
async def start_import(request: web.Request) -> web.Response:
    """A JSON path that names no file is 404 (the file, not the route, is missing).

    The three ways in (multipart, path, upload id) meet in _queue: one detection and one
    job creation, with its retry, for all of them.
    """
    config: Config = request.app[config_key]
    pool = request.app[pool_key]
    if request.content_type == "multipart/form-data":
        with request.app[uploads_key].hold():
            await _refuse_while_active(pool)  # before gigabytes are sent for nothing
            stored = await uploads.save_upload(request, _upload_dir(config), uploads.UploadLimits.of(config))
        async with _removed_on_failure(stored):  # our own upload: no job will ever read it
            job = await _queue(request, stored, _form_options(stored.fields))
    elif request.content_type == "application/json":
        body = ImportSource.model_validate_json(await request.read()).root
        if isinstance(body, ImportUpload):
            # Refused, it stays an upload to import later; queued, it is the job's file.
            async with request.app[tus_key].claim(body.upload) as stored:
                job = await _queue(request, stored, body.wanted())
        else:
            stored = await _import_path(config, body.path)
            job = await _queue(request, stored, body.wanted())
    else:
        raise UnsupportedBody("send JSON {\"path\": ...} or a multipart/form-data upload (field 'file')")
    request.app[runner_key].wake()
    if stored.sha256 is not None:
        job["upload"] = {"sha256": stored.sha256, "bytes": stored.size}
    return web.json_response(job, status=202)


def _form_options(fields: dict[str, str]) -> dict:
    """The options of a multipart form: text fields, `mapping` as JSON."""
    values: dict[str, Any] = {k: v for k, v in fields.items() if k in ImportOptions.model_fields}
    if "mapping" in values:
        try:
            values["mapping"] = json.loads(values["mapping"] or "{}")
        except ValueError:
            raise UnreadableFile("the form field 'mapping' is not JSON") from None
    return ImportOptions.model_validate(values).wanted()


@contextlib.asynccontextmanager
async def _removed_on_failure(stored: uploads.StoredFile) -> AsyncIterator[None]:
    """A file this request received goes with the request when it fails: nothing is left behind."""
    try:
        yield
    except BaseException:
        await asyncio.shield(uploads.remove(stored.path))
        raise


async def _queue(request: web.Request, stored: uploads.StoredFile, options: dict) -> dict:
    """The file's effective options, then its job: the one way every POST /import goes."""
    detected = await _detect(request.app[config_key], stored, options)
    return await jobs.create(request.app[pool_key], filename=stored.filename, path=stored.path,
                             bytes_total=stored.size, created_by=principal(request).label,
                             options=detected.options)


async def _detect(config: Config, stored: uploads.StoredFile, options: dict) -> Detected:
    """The file's effective options, off the loop; a file that cannot be read as asked is 415 or 422."""
    try:
        return await asyncio.to_thread(detect_file, stored.path, options, max_record_bytes=config.max_record_bytes)
    except DateFormatUnclear as exc:
        raise UnclearDates(exc) from None
    except FileRejected as exc:
        raise _refusal(exc) from None


def _refusal(exc: FileRejected) -> DomainError:
    if isinstance(exc, EncodingUnclear):
        return UnclearEncoding(exc)
    if isinstance(exc, NotCsvText):
        return UnsupportedUpload(str(exc))
    return UnreadableFile(str(exc))


def _upload_dir(config: Config) -> Path:
    return config.import_dir / "uploads"


async def _import_path(config: Config, name: str) -> uploads.StoredFile:
    """A file named inside the import directory, but never one of the upload area's."""
    if await asyncio.to_thread(_in_upload_area, config, name):
        raise NotAnImportPath(f"{name!r} is in the upload area, whose files are uploads, not import files: "
                              "import a finished upload with {\"upload\": ID}")
    return await uploads.find_in_import_dir(config.import_dir, name, max_line_bytes=config.max_record_bytes)


def _in_upload_area(config: Config, name: str) -> bool:
    try:
        area = _upload_dir(config).resolve()
        target = (config.import_dir.resolve() / name.replace("\\", "/")).resolve()
    except (OSError, RuntimeError, ValueError):
        return False  # find_in_import_dir says what is wrong with such a name
    return target.is_relative_to(area)


@routes.post("/import/preview")
@requires(Role.admin)
@describe("What an import would do with a file: detected settings, columns with their fields, "
          "suggestions and a check of what their values look like, the first 20 rows as they would be "
          "stored (rejects marked), a few decoded non-ASCII words. Same bodies as POST /import; a "
          "multipart upload is kept as `upload` for POST /import {\"upload\"}; a failed one is not kept",
          body=ImportSource, tags=TAGS,
          responses={200: Preview, 400: Error, 404: Error, 409: Error, 410: Error, 413: Error, 415: Error,
                     422: Error, 423: Error})
async def preview_import(request: web.Request) -> web.Response:
    config: Config = request.app[config_key]
    if request.content_type == "multipart/form-data":
        with request.app[uploads_key].hold():
            stored = await uploads.save_upload(request, _upload_dir(config), uploads.UploadLimits.of(config))
        async with _removed_on_failure(stored):
            preview = await _preview(config, stored, _form_options(stored.fields))
            # Kept only once the preview worked: a failed request leaves no file and no row.
            preview["upload"] = await request.app[tus_key].adopt(stored, principal(request).label)
    elif request.content_type == "application/json":
        body = ImportSource.model_validate_json(await request.read()).root
        if isinstance(body, ImportUpload):
            stored = await request.app[tus_key].path_of(body.upload)
        else:
            stored = await _import_path(config, body.path)
        preview = await _preview(config, stored, body.wanted())
        preview["upload"] = body.upload if isinstance(body, ImportUpload) else None
    else:
        raise UnsupportedBody("send JSON {\"path\": ...} or {\"upload\": ...}, or a multipart/form-data "
                              "upload (field 'file')")
    return web.json_response(preview)


async def _preview(config: Config, stored: uploads.StoredFile, options: dict) -> dict:
    try:
        return await asyncio.to_thread(preview_file, stored.path, options, config.max_record_bytes)
    except FileRejected as exc:
        raise _refusal(exc) from None


async def _refuse_while_active(pool) -> None:
    active = await jobs.active(pool)
    if active is not None:
        raise jobs.JobActive(active[4])
