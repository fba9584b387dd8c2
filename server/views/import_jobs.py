"""/import/jobs and /import/events: follow, read and control import jobs (import_models.py has the bodies)."""
from __future__ import annotations

from aiohttp import web

from ..auth.roles import Role, requires
from ..csvout import escape_bytes, stream_csv, stream_records
from ..importer import jobs
from ..importer.header import as_text
from ..keys import events_key, pool_key, runner_key
from ..openapi import describe
from .import_models import (CurrentJob, Error, Job, JobConflict, JobPage, JobsQuery, ReasonsQuery, RecentRows,
                            RejectReasons, RejectsQuery)
from .params import query_params

routes = web.RouteTableDef()
JOB_ID = r"{id:\d{1,18}}"  # anything else is a 404, and a number always fits a bigint
TAGS = ("imports",)


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
    encoding = options.get("encoding") or "utf-8"
    records = (as_text(raw, encoding) async for _, _, _, raw in jobs.rejects(pool, job_id))
    return await stream_records(request, f"import-{job_id}-rejected-rows.csv", columns,
                                options.get("delimiter") or ",", records)


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
