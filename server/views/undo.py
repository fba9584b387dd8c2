"""POST /import/jobs/{id}/undo: take an import back, as a job of its own (docs/history.md)."""
from __future__ import annotations

import pydantic
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ..auth.middleware import principal
from ..auth.roles import Role, requires
from ..errors import DomainError, validation_body
from ..importer import undo
from ..keys import config_key, pool_key, runner_key
from ..openapi import describe
from .customers import Problem

routes = web.RouteTableDef()
JOB_ID = r"{id:\d{1,18}}"


class UndoBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dry_run: bool = Field(default=False, description="count what the undo would do, change no customer")


class BadBody(DomainError):
    status = 422

    def __init__(self, body: dict):
        super().__init__(body["error"])
        self._body = body

    def body(self) -> dict:
        return self._body


@routes.post(f"/import/jobs/{JOB_ID}/undo")
@requires(Role.admin)
@describe("Undo a finished import as a job of its own (kind undo): deletes the customers it inserted, "
          "restores the ones it updated; customers changed since are left as they are and listed in the "
          "undo's rejects. 409 with the reason when it cannot run", body=UndoBody, tags=("imports",),
          responses={202: "the undo job", 404: Problem, 409: Problem, 422: Problem})
async def undo_job(request: web.Request) -> web.Response:
    raw = await request.read()
    try:
        body = UndoBody.model_validate_json(raw) if raw.strip() else UndoBody()
    except pydantic.ValidationError as exc:
        raise BadBody(validation_body(exc)) from None
    job = await undo.start(request.app[pool_key], int(request.match_info["id"]),
                           history_days=request.app[config_key].history_days, dry_run=body.dry_run,
                           created_by=principal(request).label)
    request.app[runner_key].wake()
    return web.json_response(job, status=202)
