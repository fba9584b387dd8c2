"""Domain errors and the one place that turns them into HTTP answers."""
from __future__ import annotations

import logging

import psycopg2
import pydantic
from aiohttp import web

from .logs import loggable_path

log = logging.getLogger(__name__)
DATABASE_RETRY_AFTER = 5  # seconds: about what a PostgreSQL restart or failover takes


class DomainError(Exception):
    """An error a client can act on. Subclasses say which status it maps to."""

    status = 400
    # True when the request's body may still be arriving and is not wanted: the
    # answer closes the connection instead of reading the rest of it first.
    close_connection = False

    def body(self) -> dict:
        return {"error": str(self)}

    def headers(self) -> dict[str, str]:
        return {}


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


def database_unavailable() -> dict:
    return {"error": "the database is not available right now; try again in a few seconds"}


def validation_body(exc: pydantic.ValidationError, where: str = "body") -> dict:
    """A 422 body that names every field that is wrong."""
    fields = []
    for error in exc.errors(include_url=False):
        name = ".".join(str(part) for part in error["loc"]) or where
        fields.append({"field": name, "message": error["msg"]})
    names = ", ".join(f["field"] for f in fields)
    return {"error": f"invalid {where}: {names}", "fields": fields}


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomainError as exc:
        response = web.json_response(exc.body(), status=exc.status, headers=exc.headers())
        if exc.close_connection:
            response.force_close()
        return response
    except pydantic.ValidationError as exc:
        return web.json_response(validation_body(exc), status=422)
    except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
        # The connection is lost or refused (a restart, a failover, a full server): the
        # request may well work in a moment. An error in the query itself is not this.
        log.warning("%s %s: the database is unavailable: %s", request.method, loggable_path(request),
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        return web.json_response(database_unavailable(), status=503,
                                 headers={"Retry-After": str(DATABASE_RETRY_AFTER)})
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        return web.json_response({"error": exc.reason if exc.text is None else exc.text},
                                 status=exc.status, headers=_kept_headers(exc))


def _kept_headers(exc: web.HTTPException) -> dict:
    return {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "etag", "retry-after")}
