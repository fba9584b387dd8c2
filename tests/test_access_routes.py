"""Who gets what, route by route: anonymous, viewer, editor and admin over real HTTP.

ROUTES is the contract's "Access" section written out; a route the app serves
that is missing here (someone added one) fails test_the_table_covers_every_route,
and one that declares no role fails test_every_route_declares_a_role.
"""
import pytest
from yarl import URL

from server.auth.roles import PUBLIC, Role, declared_role

ANONYMOUS = None
V, E, A = Role.viewer, Role.editor, Role.admin

# (method, route as the router names it, a concrete request path, body, least role)
ROUTES = [
    ("GET", "/healthz", "/healthz", None, PUBLIC),
    ("GET", "/login", "/login", None, PUBLIC),
    ("POST", "/login", "/login", {"form": {"name": "x", "password": "y"}}, PUBLIC),
    ("GET", "/login/link/{secret}", "/login/link/not-a-link", None, PUBLIC),
    ("POST", "/logout", "/logout", None, PUBLIC),
    ("GET", "/static", "/static/css/app.css", None, PUBLIC),
    ("GET", "/favicon.ico", "/favicon.ico", None, PUBLIC),
    ("GET", "/", "/", None, V),
    ("GET", "/openapi.json", "/openapi.json", None, V),
    ("GET", "/metrics", "/metrics", None, V),
    ("GET", "/import", "/import", None, V),
    ("GET", "/import/jobs", "/import/jobs", None, V),
    ("GET", "/import/jobs/{id}", "/import/jobs/1", None, V),
    ("GET", "/import/jobs/{id}/recent", "/import/jobs/1/recent", None, V),
    ("GET", "/import/jobs/{id}/rejects.csv", "/import/jobs/1/rejects.csv", None, V),
    ("GET", "/import/jobs/{id}/reject-reasons", "/import/jobs/1/reject-reasons", None, V),
    ("GET", "/import/events", "/import/events", None, V),
    ("POST", "/import", "/import", {"json": {"path": "absent.csv"}}, A),
    ("POST", "/import/preview", "/import/preview", {"json": {"path": "absent.csv"}}, A),
    ("POST", "/import/jobs/{id}/pause", "/import/jobs/1/pause", None, A),
    ("POST", "/import/jobs/{id}/resume", "/import/jobs/1/resume", None, A),
    ("POST", "/import/jobs/{id}/cancel", "/import/jobs/1/cancel", None, A),
    ("POST", "/import/jobs/{id}/undo", "/import/jobs/1/undo", None, A),
    ("GET", "/customers", "/customers", None, V),
    ("GET", "/customers.csv", "/customers.csv", None, V),
    ("GET", "/customers/{id}", "/customers/1", None, V),
    ("POST", "/customers", "/customers", {"json": {"customer_id": "ROLE-TEST"}}, E),
    ("PATCH", "/customers/{id}", "/customers/1", {"json": {"city": "Oslo"}}, E),
    ("POST", "/customers/{id}/release", "/customers/1/release", None, E),
    ("DELETE", "/customers/{id}", "/customers/1", None, E),
    ("GET", "/customers/{id}/history", "/customers/1/history", None, V),
    ("OPTIONS", "/uploads", "/uploads", None, PUBLIC),
    ("OPTIONS", "/uploads/{id}", "/uploads/" + "0" * 32, None, PUBLIC),
    ("POST", "/uploads", "/uploads", None, A),
    ("HEAD", "/uploads/{id}", "/uploads/" + "0" * 32, None, A),
    ("PATCH", "/uploads/{id}", "/uploads/" + "0" * 32, None, A),
    ("DELETE", "/uploads/{id}", "/uploads/" + "0" * 32, None, A),
]


def route_name(route) -> str:
    info = route.resource.get_info()
    if "prefix" in info:
        return info["prefix"]
    return info.get("formatter") or info.get("path")


def served_routes(app):
    """Every route but the HEADs that aiohttp adds beside a GET (same handler)."""
    for route in app.router.routes():
        if route.method == "HEAD" and any(r.method == "GET" and r.handler == route.handler for r in route.resource):
            continue
        yield route.method, route_name(route), route


def test_every_route_declares_a_role(app):
    undeclared = [f"{method} {name}" for method, name, route in served_routes(app) if declared_role(route) is None]
    assert undeclared == [], ("routes without @requires(Role.x) or @public (server/auth/roles.py): "
                              f"{undeclared}")


def test_the_table_covers_every_route(app):
    served = {(method, name) for method, name, _ in served_routes(app)}
    listed = {(method, name) for method, name, *_ in ROUTES}
    assert served - listed == set(), "routes this test does not know yet: add them to ROUTES"
    assert listed - served == set(), "ROUTES names routes the app no longer serves"


def test_each_route_declares_the_role_the_table_says(app):
    declared = {(method, name): declared_role(route) for method, name, route in served_routes(app)}
    assert {(m, n): declared[(m, n)] for m, n, *_, role in ROUTES} == {(m, n): role for m, n, *_, role in ROUTES}


def refused(status: int, headers) -> str | None:
    if status == 401 and "WWW-Authenticate" in headers:
        return "401"
    if status == 403:
        return "403"
    return None


async def call(client, method, path, body):
    kwargs = dict(body or {})
    if "form" in kwargs:
        kwargs["data"] = kwargs.pop("form")
    async with client.request(method, path, allow_redirects=False, **kwargs) as resp:
        return resp.status, resp.headers


@pytest.mark.parametrize("who", [ANONYMOUS, V, E, A], ids=["anonymous", "viewer", "editor", "admin"])
async def test_what_each_role_gets_on_each_route(who, anonymous_client, client_as, db):
    await db.all("INSERT INTO customers (id, customer_id) VALUES (1, 'C1')")
    client = anonymous_client if who is ANONYMOUS else await client_as(who)
    got, wanted, broken = {}, {}, {}
    for method, _name, path, body, least in ROUTES:
        if least is PUBLIC:
            wanted[f"{method} {path}"] = None
        elif who is ANONYMOUS:
            wanted[f"{method} {path}"] = "401"
        else:
            wanted[f"{method} {path}"] = None if who >= least else "403"
        status, headers = await call(client, method, path, body)
        got[f"{method} {path}"] = refused(status, headers)
        if status >= 500:  # let in, then broken, is not "allowed"
            broken[f"{method} {path}"] = status
    assert got == wanted
    assert broken == {}


async def test_a_browser_asking_for_a_page_is_sent_to_the_sign_in_page(anonymous_client):
    resp = await anonymous_client.get("/?x=1", headers={"Accept": "text/html,*/*"}, allow_redirects=False)
    assert resp.status == 303
    location = URL(resp.headers["Location"])
    assert (location.path, location.query["next"]) == ("/login", "/?x=1")
    resp = await anonymous_client.get("/customers", allow_redirects=False)
    assert resp.status == 401 and resp.headers["WWW-Authenticate"] == "Bearer"
    assert "sign in" in (await resp.json())["error"]


async def test_a_forbidden_request_says_which_role_it_needs(client_as):
    viewer = await client_as("viewer", name="dash")
    resp = await viewer.post("/customers", json={"customer_id": "X"})
    assert resp.status == 403
    assert (await resp.json())["error"] == "this needs the editor role; token:dash is viewer"
