"""/customers: read, search, edit and export customers."""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import pydantic
from aiohttp import web
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field

from .. import customers
from ..csvout import stream_csv
from ..db import read_pool
from ..auth.middleware import principal
from ..auth.roles import Role, requires
from ..errors import DomainError
from ..keys import exports_key, pool_key
from ..openapi import describe
from .customer_models import Customer, CustomerCreate, CustomerPatch, no_nul
from .params import query_params

routes = web.RouteTableDef()

_DIGITS = re.compile(r"[0-9]{1,19}")  # no sign, no spaces, no "1_000"; MAX_ID is checked apart

Cursor = Annotated[customers.Cursor, BeforeValidator(customers.decode_cursor),
                   pydantic.WithJsonSchema({"type": "string", "description": "`next` of the previous page"})]


class SearchQuery(BaseModel):
    q: Annotated[str, AfterValidator(no_nul)] | None = Field(
        None, max_length=200,
        description="words separated by spaces, each a case-insensitive substring of first or last name, "
                    "email, company, city or country, in any order (every word must match); "
                    "or the start of a Customer Id (any case)")


class PageQuery(SearchQuery):
    limit: int = Field(50, ge=1, le=500)
    after: Cursor | None = None
    sort: Literal["id", "newest", "updated"] = Field(
        "id", description="id order, newest first, or recently updated first; not with q")
    job: int | None = Field(None, ge=1, le=customers.MAX_ID,
                            description="only customers the import job with this id wrote last; not with q")
    edited: bool = Field(False, description="only customers edited by hand; not with q")
    total: bool = Field(False, description="also `total`: an exact count for a small table, "
                                           "else the planner's estimate (`total_is_estimate`); with q, "
                                           "job or edited also `matches`, counted up to "
                                           f"{customers.MATCH_COUNT_CAP} (`matches_capped`: more match)")


class CustomerPage(BaseModel):
    """A page of customers in the order asked for; `next` is null on the last page."""

    items: list[Customer]
    next: str | None
    total: int | None = Field(None, description="with ?total=true: how many customers the table holds")
    total_is_estimate: bool | None = Field(None, description="whether `total` comes from table statistics")
    matches: int | None = Field(None, description="with ?total=true and q, job or edited: how many customers "
                                                  f"match, at most {customers.MATCH_COUNT_CAP}")
    matches_capped: bool | None = Field(None, description="whether more customers match than `matches`")
    partial: bool | None = Field(
        None, description="with q: whether the search stopped at its work budget before the page was full "
                          "(a short or very common string over many customers). Every match up to `next` is "
                          "on this page or an earlier one; more may match after it: follow `next`, or refine "
                          "the search (a longer string is answered at once)")
    matches_partial: bool | None = Field(
        None, description="with ?total=true and q: whether the count stopped at the work budget, so that at "
                          "least `matches` customers match (those up to where it stopped)")


class Problem(BaseModel):
    """What went wrong."""

    error: str


class Stale(BaseModel):
    """If-Match named an old version: the current customer and its ETag."""

    error: str
    etag: str
    customer: Customer


class FieldProblem(BaseModel):
    field: str
    message: str


class Invalid(BaseModel):
    """Fields that are wrong, each named."""

    error: str
    fields: list[FieldProblem]


@routes.get("/customers")
@requires(Role.viewer)
@describe("A keyset page of customers, optionally searched", query=PageQuery, tags=("customers",),
          responses={200: CustomerPage, 422: Invalid})
async def list_customers(request: web.Request) -> web.Response:
    query = query_params(PageQuery, request)
    pool = read_pool(request)
    only = customers.ListFilter(job=query.job, edited=query.edited)
    found = await customers.page(pool, limit=query.limit, after=query.after, q=query.q, sort=query.sort, only=only)
    body: dict[str, Any] = {"items": found.items,
                            "next": None if found.next is None else customers.encode_cursor(found.next)}
    if query.q:
        body["partial"] = found.partial
    if query.total:
        body["total"], exact = await customers.estimated_total(pool)
        body["total_is_estimate"] = not exact
        if query.q or only != customers.ListFilter():
            matches = await customers.count_matches(pool, query.q, only)
            body["matches"], body["matches_capped"] = matches.count, matches.capped
            if query.q:
                body["matches_partial"] = matches.partial
    return web.json_response(body)


@routes.get("/customers.csv")
@requires(Role.viewer)
@describe("Every customer (or those matching q) as a streamed CSV download", query=SearchQuery,
          tags=("customers",), responses={200: "text/csv, one row a customer", 422: Invalid, 429: Problem})
async def export_customers(request: web.Request) -> web.StreamResponse:
    query = query_params(SearchQuery, request)
    with request.app[exports_key].hold():
        return await stream_csv(request, "customers.csv", customers.FIELDS,
                                customers.export_rows(read_pool(request), query.q))


@routes.post("/customers")
@requires(Role.editor)
@describe("Create a customer (marked as edited by hand)", body=CustomerCreate, tags=("customers",),
          responses={201: Customer, 409: Problem, 415: Problem, 422: Invalid})
async def create_customer(request: web.Request) -> web.Response:
    fields = CustomerCreate.model_validate_json(await _json_body(request))
    customer = await customers.create(request.app[pool_key], fields.model_dump(), by=principal(request).label)
    return _customer_response(customer, status=201,
                              headers={"Location": str(request.app.router["customer"].url_for(
                                  id=str(customer["id"])))})


@routes.get("/customers/{id}", name="customer")
@requires(Role.viewer)
@describe("One customer, with its ETag", tags=("customers",), responses={200: Customer, 404: Problem})
async def get_customer(request: web.Request) -> web.Response:
    return _customer_response(await customers.get(read_pool(request), _path_id(request)))


@routes.patch("/customers/{id}")
@requires(Role.editor)
@describe("Change some fields of a customer (marked as edited by hand); honours If-Match",
          body=CustomerPatch, tags=("customers",),
          responses={200: Customer, 404: Problem, 409: Problem, 412: Stale, 415: Problem, 422: Invalid})
async def patch_customer(request: web.Request) -> web.Response:
    customer_id = _path_id(request)
    changes = CustomerPatch.model_validate_json(await _json_body(request))
    customer = await customers.update(request.app[pool_key], customer_id,
                                      changes.model_dump(exclude_unset=True), _if_match(request, customer_id),
                                      by=principal(request).label)
    return _customer_response(customer)


@routes.post("/customers/{id}/release")
@requires(Role.editor)
@describe("Let imports update this customer again: clears updated_manually_at (the hand-edit mark); "
          "honours If-Match", tags=("customers",), responses={200: Customer, 404: Problem, 412: Stale})
async def release_customer(request: web.Request) -> web.Response:
    customer_id = _path_id(request)
    return _customer_response(await customers.release(request.app[pool_key], customer_id,
                                                      _if_match(request, customer_id)))


@routes.delete("/customers/{id}")
@requires(Role.editor)
@describe("Delete a customer; honours If-Match", tags=("customers",),
          responses={204: "deleted", 404: Problem, 412: Stale})
async def delete_customer(request: web.Request) -> web.Response:
    customer_id = _path_id(request)
    await customers.delete(request.app[pool_key], customer_id, _if_match(request, customer_id),
                           by=principal(request).label)
    return web.Response(status=204)


class NotJson(DomainError):
    status = 415


async def _json_body(request: web.Request) -> bytes:
    if request.content_type != "application/json":
        raise NotJson(f"send the customer as JSON with Content-Type application/json, "
                      f"not {request.content_type}")
    return await request.read()


def _customer_response(customer: dict, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.json_response(customer, status=status, headers={"ETag": customers.etag(customer), **(headers or {})})


def _path_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not _DIGITS.fullmatch(raw) or int(raw) > customers.MAX_ID:
        raise customers.CustomerNotFound(repr(raw))
    return int(raw)


def _if_match(request: web.Request, customer_id: int) -> list[int] | None:
    """The versions If-Match allows; None when any will do (no header, or `*`).

    Tags that are not this customer's, or not ours at all, match nothing, so
    such a request gets 412, never a blind write.
    """
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    versions = []
    for tag in header.split(","):
        # Weak tags are taken too: some clients and proxies weaken what they pass on.
        tag = tag.strip().removeprefix("W/").strip('"')
        tag_id, _, tag_version = tag.partition("-")
        if tag_id == str(customer_id) and _DIGITS.fullmatch(tag_version) and int(tag_version) <= customers.MAX_ID:
            versions.append(int(tag_version))
    return versions
