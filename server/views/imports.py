"""/import: start, follow and control import jobs."""
from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import psycopg2.errors
import pydantic
from aiohttp import web

from .. import uploads
from ..config import Config
from ..csvout import escape_bytes, stream_csv
from ..errors import DomainError
from ..importer import jobs
from ..auth.middleware import principal
from ..auth.roles import Role, requires
from ..fields import IMPORTED_NAMES
from ..importer.dates import LAYOUTS, DateFormatUnclear
from ..importer.detect import Detected, detect_file
from ..importer.header import DELIMITERS, ENCODINGS, EncodingUnclear, FileRejected, NotCsvText, as_text
from ..importer.preview import preview_file
from ..keys import config_key, events_key, pool_key, runner_key, tus_key, uploads_key
from ..openapi import describe
from .params import query_params

routes = web.RouteTableDef()
JOB_ID = r"{id:\d{1,18}}"  # anything else is a 404, and a number always fits a bigint
TAGS = ("imports",)
CREATE_ATTEMPTS = 3


class Job(pydantic.BaseModel):
    """An import job, as stored in import_jobs (percent, rate and ETA derived)."""

    id: int
    status: Literal["queued", "running", "paused", "completed", "failed", "cancelled"]
    filename: str
    bytes_total: int
    bytes_done: int
    percent: float
    line_no: int
    rows_done: int
    inserted: int
    updated: int
    skipped_manual: int
    rejected: int
    rows_per_second: float | None
    eta_seconds: float | None
    unknown_columns: list[str]
    started_at: datetime | None
    updated_at: datetime
    finished_at: datetime | None
    error: str | None
    worker: str | None = pydantic.Field(description="host:pid of the process running it")
    created_by: str | None = pydantic.Field(
        None, description="who started it: a user, token:NAME, or null for the command line")
    event_seq: int = pydantic.Field(description="id of the last event about this job")
    options: dict[str, Any] = pydantic.Field(
        default_factory=dict, description="effective encoding, delimiter, date_format, mapping, dry_run")
    # issue 24: history and undo (docs/history.md)
    unchanged: int = pydantic.Field(0, description="rows whose values equal the stored ones: not written")
    deleted: int = pydantic.Field(0, description="an undo: customers it removed (the undone import inserted them)")
    kind: Literal["import", "undo"] = "import"
    undoes: int | None = pydantic.Field(None, description="an undo: the job it takes back")


class Idle(pydantic.BaseModel):
    """No import has ever run."""

    status: Literal["idle"]


class CurrentJob(pydantic.RootModel[Job | Idle]):
    """The active job, else the last one, else {"status": "idle"}."""


class StartedJob(Job):
    """The job just queued; for an upload also what the server stored."""

    upload: dict[str, Any] | None = pydantic.Field(
        None, description="for uploads: {sha256, bytes} of the file as received")


class JobPage(pydantic.BaseModel):
    """Jobs, newest first; `next` is the `before` of the following page."""

    items: list[Job]
    next: int | None


class JobConflict(pydantic.BaseModel):
    """The action is not allowed now; `job` is the job in the way."""

    error: str
    job: Job


class Error(pydantic.BaseModel):
    """What is wrong, in words."""

    error: str


class RecentRows(pydantic.BaseModel):
    """The latest imported rows, oldest first (about truncated to 200 characters)."""

    items: list[dict[str, Any]]


class ImportOptions(pydantic.BaseModel):
    """How to read the file; `auto` detects from a sample (docs/files.md)."""

    model_config = pydantic.ConfigDict(extra="forbid")
    encoding: Literal[("auto", *ENCODINGS)] = "auto"
    delimiter: Literal[("auto", *DELIMITERS)] = "auto"
    date_format: Literal[("auto", *LAYOUTS)] = "auto"
    mapping: dict[str, Literal[IMPORTED_NAMES] | None] = pydantic.Field(
        default_factory=dict, description="file column -> customer field, or null to ignore the column")
    dry_run: bool = pydantic.Field(False, description="count and reject as an import would; change no customer")

    def wanted(self) -> dict:
        return self.model_dump(include=set(ImportOptions.model_fields))


class ImportPath(ImportOptions):
    """A file already inside the import directory, by its relative name."""

    path: str = pydantic.Field(min_length=1, max_length=1024)


class ImportUpload(ImportOptions):
    """A finished resumable upload, by its id (the last part of its /uploads URL)."""

    upload: str = pydantic.Field(pattern=r"^[0-9a-f]{32}$")


class ImportSource(pydantic.RootModel[ImportPath | ImportUpload]):
    """What to import: `path` or `upload`, one of them."""


class JobsQuery(pydantic.BaseModel):
    before: int | None = pydantic.Field(None, ge=1, le=2**63 - 1, description="job id to page back from")
    limit: int = pydantic.Field(50, ge=1, le=200)


class RejectsQuery(pydantic.BaseModel):
    format: Literal["lines", "file"] = pydantic.Field(
        "lines", description="lines: line number, offset, reason and raw bytes; file: the file's header and "
        "each rejected record as it was, in UTF-8, to fix and import again")


class RejectReason(pydantic.BaseModel):
    reason: str = pydantic.Field(description="what went wrong; a value quoted from the row is shown as …")
    rows: int
    first_line: int = pydantic.Field(description="the first line of the file rejected for it")


class RejectReasons(pydantic.BaseModel):
    """A job's rejects grouped by reason, most rows first."""

    items: list[RejectReason]


class ReasonsQuery(pydantic.BaseModel):
    limit: int = pydantic.Field(10, ge=1, le=100, description="at most this many reasons")


class UnsupportedBody(DomainError):
    status = 415


class UnclearDates(DomainError):
    """auto could not tell the date layout; `date_formats` names those that fit best."""

    status = 422

    def __init__(self, exc: DateFormatUnclear):
        super().__init__(str(exc))
        self.fits = exc.fits

    def body(self) -> dict:
        return {"error": str(self), "field": "date_format", "date_formats": self.fits}


class UnreadableFile(DomainError):
    status = 422


class UnclearEncoding(DomainError):
    """auto found the sample partly UTF-8, partly not; `encodings` names the choices."""

    status = 422

    def __init__(self, exc: EncodingUnclear):
        super().__init__(str(exc))

    def body(self) -> dict:
        return {"error": str(self), "field": "encoding", "encodings": list(EncodingUnclear.choices)}


class NotAnImportPath(DomainError):
    status = 400


class ValueCheck(pydantic.BaseModel):
    """How many of a column's sampled values look like its field's (server/fields.py shapes)."""

    kind: Literal["email", "date", "phone", "url"]
    sampled: int
    matching: int
    warning: str | None = pydantic.Field(description="set when most sampled values do not look like the field")


class PreviewColumn(pydantic.BaseModel):
    name: str
    field: str | None
    suggestions: list[str]
    check: ValueCheck | None = pydantic.Field(description="null: the field has no shape to check")


class Preview(pydantic.BaseModel):
    """What an import of this file would do, from a sample; `upload` imports it without sending it again."""

    encoding: str
    delimiter: str
    date_format: str
    date_formats: list[str]
    columns: list[PreviewColumn]
    rows: list[dict[str, Any]]
    estimated_rows: int
    non_ascii_examples: list[str] = pydantic.Field(
        description="up to 5 words with non-ASCII letters as the encoding reads them (José, not JosÃ©)")
    fields: list[dict[str, str]] = pydantic.Field(description="every customer field a column can go to")
    upload: str | None = None


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
    return await _create_job(request.app[pool_key], stored, principal(request).label, detected.options)


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
        return uploads.NotCsv(str(exc))
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


async def _create_job(pool, stored: uploads.StoredFile, created_by: str, options: dict) -> dict:
    for attempt in range(CREATE_ATTEMPTS):
        try:
            return await jobs.create(pool, filename=stored.filename, path=stored.path,
                                     bytes_total=stored.size, created_by=created_by, options=options)
        except psycopg2.errors.UniqueViolation:
            # The job in the way ended before it could be named: the way is free now.
            if attempt == CREATE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


@routes.get("/import")
@requires(Role.viewer)
@describe("The current import job, else the last one, else {\"status\": \"idle\"}",
          responses={200: CurrentJob}, tags=TAGS)
async def current_import(request: web.Request) -> web.Response:
    job = await jobs.current(request.app[pool_key])
    return web.json_response(job or {"status": "idle"})


@routes.get("/import/jobs")
@requires(Role.viewer)
@describe("Import jobs, newest first (keyset: ?before=ID&limit=N)", query=JobsQuery,
          responses={200: JobPage, 422: Error}, tags=TAGS)
async def list_jobs(request: web.Request) -> web.Response:
    query = query_params(JobsQuery, request)
    items = await jobs.page(request.app[pool_key], limit=query.limit, before=query.before)
    more = len(items) == query.limit
    return web.json_response({"items": items, "next": items[-1]["id"] if more else None})


@routes.get(f"/import/jobs/{JOB_ID}")
@requires(Role.viewer)
@describe("One import job", responses={200: Job, 404: Error}, tags=TAGS)
async def get_job(request: web.Request) -> web.Response:
    return web.json_response(await jobs.get(request.app[pool_key], _job_id(request)))


async def _control(request: web.Request, action: str) -> web.Response:
    job = await jobs.control(request.app[pool_key], _job_id(request), action)
    if job["status"] in ("queued", "running"):
        request.app[runner_key].wake()
    return web.json_response(job)


@routes.post(f"/import/jobs/{JOB_ID}/pause")
@requires(Role.admin)
@describe("Pause a queued or running job at its next batch", tags=TAGS,
          responses={200: Job, 404: Error, 409: JobConflict})
async def pause_job(request: web.Request) -> web.Response:
    return await _control(request, "pause")


@routes.post(f"/import/jobs/{JOB_ID}/resume")
@requires(Role.admin)
@describe("Resume a paused job from its last committed byte", tags=TAGS,
          responses={200: Job, 404: Error, 409: JobConflict})
async def resume_job(request: web.Request) -> web.Response:
    return await _control(request, "resume")


@routes.post(f"/import/jobs/{JOB_ID}/cancel")
@requires(Role.admin)
@describe("Cancel a queued, running or paused job; what was committed stays", tags=TAGS,
          responses={200: Job, 404: Error, 409: JobConflict})
async def cancel_job(request: web.Request) -> web.Response:
    return await _control(request, "cancel")


@routes.get(f"/import/jobs/{JOB_ID}/recent")
@requires(Role.viewer)
@describe("The most recently imported rows of a job", responses={200: RecentRows, 404: Error}, tags=TAGS)
async def recent_rows(request: web.Request) -> web.Response:
    return web.json_response({"items": await jobs.recent(request.app[pool_key], _job_id(request))})


@routes.get(f"/import/jobs/{JOB_ID}/rejects.csv")
@requires(Role.viewer)
@describe("Every rejected row of a job as CSV (?format=file: the file's own header and rejected records, "
          "in UTF-8); by default line_no, byte_offset, reason, raw (the line's bytes: "
          "UTF-8 text as it is, other bytes and control characters as \\xNN, a backslash doubled)", tags=TAGS,
          query=RejectsQuery, responses={200: "text/csv, streamed", 404: Error, 422: Error})
async def rejects_csv(request: web.Request) -> web.StreamResponse:
    job_id = _job_id(request)
    pool = request.app[pool_key]
    query = query_params(RejectsQuery, request)
    await jobs.get(pool, job_id)  # a 404 must come before the 200 headers are sent
    if query.format == "file":
        return await _rejects_as_file(request, pool, job_id)
    return await stream_csv(request, f"import-{job_id}-rejects.csv",
                            ("line_no", "byte_offset", "reason", "raw"), _reject_rows(pool, job_id))


async def _rejects_as_file(request: web.Request, pool, job_id: int) -> web.StreamResponse:
    """The file's header line and each rejected record as it was, in UTF-8: a file to fix and import again."""
    columns, options = await jobs.file_header(pool, job_id)
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="import-{job_id}-rejected-rows.csv"'})
    await response.prepare(request)
    out = io.StringIO()
    csv.writer(out, delimiter=options.get("delimiter") or ",", lineterminator="\r\n").writerow(columns)
    await response.write(out.getvalue().encode("utf-8"))
    encoding = options.get("encoding") or "utf-8"
    async for _, _, _, raw in jobs.rejects(pool, job_id):
        text = as_text(raw, encoding)
        await response.write((text if text.endswith("\n") else text + "\r\n").encode("utf-8"))
    await response.write_eof()
    return response


@routes.get(f"/import/jobs/{JOB_ID}/reject-reasons")
@requires(Role.viewer)
@describe("A job's rejects grouped by reason with their counts, most rows first", query=ReasonsQuery,
          responses={200: RejectReasons, 404: Error, 422: Error}, tags=TAGS)
async def reject_reasons(request: web.Request) -> web.Response:
    query = query_params(ReasonsQuery, request)
    items = await jobs.reject_reasons(request.app[pool_key], _job_id(request), query.limit)
    return web.json_response({"items": items})


async def _reject_rows(pool, job_id: int):
    async for line_no, offset, reason, raw in jobs.rejects(pool, job_id):
        yield line_no, offset, reason, escape_bytes(raw).rstrip("\r\n")


@routes.get("/import/events")
@requires(Role.viewer)
@describe("Server-Sent Events: `snapshot` first, then `progress` and `state`; id = event sequence",
          responses={200: "text/event-stream"}, tags=TAGS)
async def import_events(request: web.Request) -> web.StreamResponse:
    return await request.app[events_key].serve(request)


def _job_id(request: web.Request) -> int:
    return int(request.match_info["id"])
