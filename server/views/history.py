"""/customers/{id}/history: what changed a customer, newest first (docs/history.md)."""
from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from .. import history
from ..auth.roles import Role, requires
from ..db import read_pool
from ..openapi import describe
from .customers import Invalid
from .params import query_params

routes = web.RouteTableDef()


class HistoryQuery(BaseModel):
    limit: int = Field(50, ge=1, le=500)
    after: int | None = Field(None, ge=1, le=2**63 - 1, description="`next` of the previous page")


class HistoryItem(BaseModel):
    at: str
    action: Literal["insert", "update", "delete", "undo"]
    by: str | None = Field(description="who, for a change by a person through the API or the page")
    job_id: int | None = Field(description="the import or undo job that made the change")
    line_no: int | None = Field(description="the line of the import's file")
    changes: dict[str, Any] = Field(description='{"field": [old, new], ...}; an import\'s insert has none '
                                                "(its job and line say where the values came from)")


class HistoryPage(BaseModel):
    """A page of one customer's history, newest first; `next` is null on the last page."""

    items: list[HistoryItem]
    next: str | None


@routes.get(r"/customers/{id:\d{1,18}}/history")
@requires(Role.viewer)
@describe("Every recorded change of a customer, newest first; still there after it was deleted",
          query=HistoryQuery, tags=("customers",), responses={200: HistoryPage, 422: Invalid})
async def customer_history(request: web.Request) -> web.Response:
    query = query_params(HistoryQuery, request)
    items, last = await history.page(read_pool(request), int(request.match_info["id"]),
                                     limit=query.limit, after=query.after)
    return web.json_response({"items": items, "next": None if last is None else str(last)})
