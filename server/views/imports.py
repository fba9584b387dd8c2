"""/import: start, follow and control import jobs."""
from __future__ import annotations

from datetime import datetime
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


class ImportPath(pydantic.BaseModel):
    """A file already inside the import directory, by its relative name."""

    model_config = pydantic.ConfigDict(extra="forbid")
    path: str = pydantic.Field(min_length=1, max_length=1024)


class ImportUpload(pydantic.BaseModel):
    """A finished resumable upload, by its id (the last part of its /uploads URL)."""

    model_config = pydantic.ConfigDict(extra="forbid")
    upload: str = pydantic.Field(pattern=r"^[0-9a-f]{32}$")


class ImportSource(pydantic.RootModel[ImportPath | ImportUpload]):
    """What to import: `path` or `upload`, one of them."""


class JobsQuery(pydantic.BaseModel):
    before: int | None = pydantic.Field(None, ge=1, le=2**63 - 1, description="job id to page back from")
    limit: int = pydantic.Field(50, ge=1, le=200)


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


@routes.post("/import")
@requires(Role.admin)
@describe("Start an import: JSON {\"path\"} naming a file in the import directory, "
          "JSON {\"upload\"} naming a finished upload (/uploads), "
          "or a multipart/form-data upload with the file in the field `file`",
          body=ImportSource, tags=TAGS,
          responses={202: StartedJob, 400: Error, 404: Error, 408: Error, 409: JobConflict, 410: Error,
                     413: Error, 415: Error, 422: Error, 423: Error, 429: Error, 507: Error})
async def start_import(request: web.Request) -> web.Response:
    """A JSON path that names no file is 404 (the file, not the route, is missing)."""
    config: Config = request.app[config_key]
    pool = request.app[pool_key]
    if request.content_type == "multipart/form-data":
        with request.app[uploads_key].hold():
            await _refuse_while_active(pool)  # before gigabytes are sent for nothing
            stored = await uploads.save_upload(request, config.import_dir / "uploads",
                                               uploads.UploadLimits.of(config))
    elif request.content_type == "application/json":
        body = ImportSource.model_validate_json(await request.read()).root
        if isinstance(body, ImportUpload):
            return await _import_upload(request, body.upload)
        stored = await uploads.find_in_import_dir(config.import_dir, body.path,
                                                  max_line_bytes=config.max_record_bytes)
    else:
        raise UnsupportedBody("send JSON {\"path\": ...} or a multipart/form-data upload (field 'file')")
    job = await _create_job(pool, stored, principal(request).label)
    request.app[runner_key].wake()
    if stored.sha256 is not None:
        job["upload"] = {"sha256": stored.sha256, "bytes": stored.size}
    return web.json_response(job, status=202)


async def _import_upload(request: web.Request, upload_id: str) -> web.Response:
    """A finished tus upload becomes the job's file; refused, it stays an upload to import later."""
    async with request.app[tus_key].claim(upload_id) as stored:
        job = await jobs.create(request.app[pool_key], filename=stored.filename, path=stored.path,
                                bytes_total=stored.size, created_by=principal(request).label)
    request.app[runner_key].wake()
    job["upload"] = {"sha256": stored.sha256, "bytes": stored.size}
    return web.json_response(job, status=202)


async def _refuse_while_active(pool) -> None:
    active = await jobs.active(pool)
    if active is not None:
        raise jobs.JobActive(active[4])


async def _create_job(pool, stored: uploads.StoredFile, created_by: str) -> dict:
    try:
        for attempt in range(CREATE_ATTEMPTS):
            try:
                return await jobs.create(pool, filename=stored.filename, path=stored.path,
                                         bytes_total=stored.size, created_by=created_by)
            except psycopg2.errors.UniqueViolation:
                # The job in the way ended before it could be named: the way is free now.
                if attempt == CREATE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")
    except BaseException:
        if stored.sha256 is not None:  # our own upload: no job will ever read it
            await uploads.remove(stored.path)
        raise


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
@describe("Every rejected row of a job as CSV: line_no, byte_offset, reason, raw (the line's bytes: "
          "UTF-8 text as it is, other bytes and control characters as \\xNN, a backslash doubled)", tags=TAGS,
          responses={200: "text/csv, streamed", 404: Error})
async def rejects_csv(request: web.Request) -> web.StreamResponse:
    job_id = _job_id(request)
    pool = request.app[pool_key]
    await jobs.get(pool, job_id)  # a 404 must come before the 200 headers are sent
    return await stream_csv(request, f"import-{job_id}-rejects.csv",
                            ("line_no", "byte_offset", "reason", "raw"), _reject_rows(pool, job_id))


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
