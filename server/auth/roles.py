"""Roles, and the one decorator that declares which a route needs.

Every handler says `@requires(Role.viewer)` (or editor, admin) or `@public`
beside its route; a handler that says nothing is refused to everyone but
admins, and tests/test_access_routes.py fails for it.
"""
from __future__ import annotations

import dataclasses
import enum

from aiohttp import hdrs, web

ATTR = "__required_role__"


class Role(enum.IntEnum):
    """Each role may do all that the ones below it may."""

    viewer = 1  # reads customers, jobs, recent rows, rejects, events, exports, metrics
    editor = 2  # also creates, changes and deletes customers
    admin = 3   # also previews, uploads, starts and controls imports; users and tokens

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name]
        except KeyError:
            raise ValueError(f"role must be one of {', '.join(r.name for r in cls)}, got {name!r}") from None


class Public:
    """Needs no sign-in: /healthz, the sign-in routes, /static."""

    def __repr__(self) -> str:
        return "public"


PUBLIC = Public()


def requires(role: Role | Public):
    """Declare the role a handler needs. Put it directly under the route decorator."""
    def mark(handler):
        setattr(handler, ATTR, role)
        return handler
    return mark


public = requires(PUBLIC)


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who a request comes from: a signed-in person (cookie) or an API token."""

    name: str
    role: Role
    via: str  # "session" or "token"

    @property
    def label(self) -> str:
        """How jobs and hand edits name who made them."""
        return self.name if self.via == "session" else f"token:{self.name}"


def declared_role(route: web.AbstractRoute) -> Role | Public | None:
    """The role a route declares; None when it declares none."""
    if isinstance(route.resource, web.StaticResource):
        return PUBLIC
    return getattr(route.handler, ATTR, None)


def required_role(match_info: web.UrlMappingMatchInfo) -> Role | Public:
    """What the matched route needs. Fails closed: undeclared means admin."""
    if match_info.http_exception is not None:
        return Role.viewer  # 404/405 only to the signed in: no map of the API for strangers
    route = match_info.route
    role = declared_role(route)
    if role is None and route.method == hdrs.METH_OPTIONS:
        return PUBLIC  # CORS preflights (aiohttp-cors): browsers send them without credentials
    return Role.admin if role is None else role
