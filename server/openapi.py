"""GET /openapi.json, built from the handlers themselves so it cannot drift.

Each handler says what it is with @describe; pydantic models give the
schemas. A test checks that every route of the app is described.
"""
from __future__ import annotations

from typing import Any

import pydantic
from aiohttp import web

from .auth.roles import PUBLIC, Role, declared_role, requires

ATTR = "__openapi__"


def describe(summary: str, *, body: type[pydantic.BaseModel] | None = None,
             body_content_type: str = "application/json",
             responses: dict[int, type[pydantic.BaseModel] | str] | None = None,
             query: type[pydantic.BaseModel] | None = None, tags: tuple[str, ...] = ()):
    """Attach an OpenAPI operation to a handler. A response may be a model or a description."""
    def mark(handler):
        setattr(handler, ATTR, {"summary": summary, "body": body, "body_content_type": body_content_type,
                                "responses": responses or {200: "OK"}, "query": query, "tags": tags})
        return handler
    return mark


def build_spec(app: web.Application) -> dict[str, Any]:
    paths: dict[str, dict] = {}
    components: dict[str, Any] = {}
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("formatter") or info.get("path")
        described = getattr(route.handler, ATTR, None)
        if path is None or described is None or _implied_head(route):
            continue
        op = _operation(path, described, components)
        _secure(op, declared_role(route))
        paths.setdefault(path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Customer CSV import", "version": "1.0.0"},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": SECURITY_SCHEMES},
        "security": [{"bearer": []}, {"session": []}],
    }


def _implied_head(route: web.AbstractRoute) -> bool:
    """aiohttp adds a HEAD beside every GET, with the GET's handler: it is described by the GET.
    A HEAD of its own (tus's HEAD /uploads/{id}) is described like any route."""
    return route.method == "HEAD" and route.resource is not None and any(
        other.method == "GET" and other.handler is route.handler for other in route.resource)


SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "an API token: python -m server token create --name NAME --role ROLE"},
    "session": {"type": "apiKey", "in": "cookie", "name": "csvimp_session",
                "description": "the browser session the sign-in page sets"},
}


def _secure(op: dict, role: Role | object | None) -> None:
    """Who may call it: no credentials for public routes, else the role (x-required-role)."""
    if role is PUBLIC:
        op["security"] = []
        return
    needed = role if isinstance(role, Role) else Role.admin  # undeclared routes are admin-only
    op["x-required-role"] = needed.name
    op["description"] = f"Needs the `{needed.name}` role or above."
    op["responses"].setdefault("401", {"description": "not signed in, or the token is unknown, expired or revoked"})
    op["responses"].setdefault("403", {"description": f"signed in, but below the {needed.name} role"})


def _operation(path: str, described: dict, components: dict) -> dict:
    op: dict[str, Any] = {"summary": described["summary"], "responses": {}}
    if described["tags"]:
        op["tags"] = list(described["tags"])
    params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
              for name in _path_params(path)]
    if described["query"] is not None:
        schema = described["query"].model_json_schema()
        required = set(schema.get("required", ()))
        for name, prop in schema.get("properties", {}).items():
            params.append({"name": name, "in": "query", "required": name in required, "schema": prop})
    if params:
        op["parameters"] = params
    if described["body"] is not None:
        op["requestBody"] = {"required": True, "content": {
            described["body_content_type"]: {"schema": _ref(described["body"], components)}}}
    for status, response in described["responses"].items():
        if isinstance(response, str):
            op["responses"][str(status)] = {"description": response}
        else:
            op["responses"][str(status)] = {"description": response.__doc__ or response.__name__,
                                            "content": {"application/json": {
                                                "schema": _ref(response, components)}}}
    return op


def _ref(model: type[pydantic.BaseModel], components: dict) -> dict:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _path_params(path: str) -> list[str]:
    return [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{")]


routes = web.RouteTableDef()


@routes.get("/openapi.json")
@requires(Role.viewer)
@describe("This API, described as OpenAPI 3", responses={200: "The OpenAPI document"})
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(build_spec(request.app))
