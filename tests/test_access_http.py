"""Tokens, the Host allowlist, CORS, security headers, who did what, and what the database keeps."""
import dataclasses
import subprocess
from pathlib import Path

import pytest

from server.app import create_app
from server.auth import store
from server.auth.middleware import allowed_hosts
from server.auth.roles import Role
from server.config import Config
from server.embedded import psql_path
from server.keys import pool_key
from tests.importing import HEADER, row, write_csv
from tests.sse import SseStream

DASHBOARD = "https://dash.example.com"


async def test_a_revoked_token_is_refused_at_once(client_as, db):
    client = await client_as("viewer", name="old-dashboard")
    assert (await client.get("/import")).status == 200
    await store.revoke_token(db.pool, "old-dashboard")
    resp = await client.get("/import")
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert "revoked" in (await resp.json())["error"]


async def test_an_expired_token_is_refused(anonymous_client, db):
    token = await store.create_token(db.pool, "short", Role.viewer, expires_days=1)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await anonymous_client.get("/import", headers=headers)).status == 200
    await db.all("UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE name = 'short'")
    assert (await anonymous_client.get("/import", headers=headers)).status == 401


@pytest.mark.parametrize("authorization", ["Bearer ", "Bearer nonsense", "Basic YWRtaW46YWRtaW4=", "token"])
async def test_a_malformed_or_unknown_authorization_is_401(anonymous_client, authorization):
    resp = await anonymous_client.get("/import", headers={"Authorization": authorization})
    assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.1.evil.example", ""])
async def test_a_request_for_another_host_name_is_400(client, host):
    resp = await client.get("/import", headers={"Host": host})
    assert resp.status == 400
    assert "ALLOWED_HOSTS" in (await resp.json())["error"]


@pytest.mark.parametrize("host", ["127.0.0.1:8080", "localhost", "LOCALHOST:1", "[::1]:8080"])
async def test_the_loopback_names_are_answered_when_listening_on_loopback(client, host):
    assert (await client.get("/import", headers={"Host": host})).status == 200


def test_the_default_host_allowlist_follows_the_listening_address():
    assert allowed_hosts(Config(host="127.0.0.1")) == {"127.0.0.1", "localhost", "[::1]"}
    assert allowed_hosts(Config(host="::1")) == {"127.0.0.1", "localhost", "[::1]"}
    assert allowed_hosts(Config(host="imports.example.com")) == {"imports.example.com"}
    assert allowed_hosts(Config(host="10.1.2.3", allowed_hosts=("imports.example.com",))) == {"imports.example.com"}


async def test_allowed_hosts_replaces_the_default(client_as, config):
    client = await client_as("viewer", app=create_app(dataclasses.replace(config, allowed_hosts=("imports.example",))))
    assert (await client.get("/import", headers={"Host": "imports.example:443"})).status == 200
    assert (await client.get("/import")).status == 400  # 127.0.0.1 is not in the list now


@pytest.mark.parametrize("path", ["/healthz", "/login", "/static/css/app.css", "/customers", "/nope"])
async def test_every_response_carries_the_security_headers(anonymous_client, client, path):
    for who in (anonymous_client, client):
        resp = await who.get(path)
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "same-origin"


@pytest.fixture
def cors_app(config):
    return create_app(dataclasses.replace(config, cors_origins=(DASHBOARD,)))


async def test_cors_lets_a_configured_origin_read_with_credentials(cors_app, aiohttp_server, aiohttp_client):
    server = await aiohttp_server(cors_app)
    client = await aiohttp_client(server)
    preflight = await client.options("/customers", headers={"Origin": DASHBOARD,
                                                            "Access-Control-Request-Method": "GET",
                                                            "Access-Control-Request-Headers": "authorization"})
    assert preflight.status == 200, await preflight.text()
    assert preflight.headers["Access-Control-Allow-Origin"] == DASHBOARD
    assert preflight.headers["Access-Control-Allow-Credentials"] == "true"
    assert "AUTHORIZATION" in preflight.headers["Access-Control-Allow-Headers"].upper()

    token = await store.create_token(cors_app[pool_key], "dash", Role.viewer)
    headers = {"Origin": DASHBOARD, "Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    async with client.get("/import/events", headers=headers) as stream:
        assert stream.status == 200
        assert stream.headers["Access-Control-Allow-Origin"] == DASHBOARD
        assert stream.headers["Access-Control-Allow-Credentials"] == "true"
    refused = await client.get("/customers", headers={"Origin": DASHBOARD})
    assert refused.status == 401  # CORS opens the door to the browser, not to the data
    assert refused.headers["Access-Control-Allow-Origin"] == DASHBOARD  # so the page can read why


async def test_cors_says_nothing_to_other_origins(cors_app, client, aiohttp_server, aiohttp_client):
    client = await aiohttp_client(await aiohttp_server(cors_app))
    preflight = await client.options("/customers", headers={"Origin": "https://evil.example",
                                                            "Access-Control-Request-Method": "GET"})
    assert preflight.status == 403
    assert "Access-Control-Allow-Origin" not in preflight.headers
    resp = await client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_without_cors_origins_no_origin_gets_cors_headers(client):
    resp = await client.get("/customers", headers={"Origin": DASHBOARD})
    assert resp.status == 200 and "Access-Control-Allow-Origin" not in resp.headers
    assert (await client.options("/customers", headers={"Origin": DASHBOARD,
                                                        "Access-Control-Request-Method": "GET"})).status in (401, 405)


async def test_a_cookie_session_may_change_state_from_a_configured_origin_only(cors_app, aiohttp_server,
                                                                              aiohttp_client, db):
    server = await aiohttp_server(cors_app)
    client = await aiohttp_client(server)
    await store.add_user(db.pool, "ed", Role.editor)
    await client.get(f"/login/link/{await store.create_login_link(db.pool, 'ed')}")
    cross = {"Sec-Fetch-Site": "cross-site"}
    resp = await client.post("/customers", json={"customer_id": "D1"}, headers={**cross, "Origin": DASHBOARD})
    assert resp.status == 201
    resp = await client.post("/customers", json={"customer_id": "E1"},
                             headers={**cross, "Origin": "https://evil.example"})
    assert resp.status == 403


async def test_a_cookie_session_reads_the_event_stream_from_a_configured_origin(cors_app, aiohttp_server,
                                                                             aiohttp_client, db):
    """What `new EventSource(url, {withCredentials: true})` on a same-site dashboard sends: the
    session cookie, its Origin, no Authorization. Only a listed origin may read the answer."""
    client = await aiohttp_client(await aiohttp_server(cors_app))
    await store.add_user(db.pool, "vi", Role.viewer)
    await client.get(f"/login/link/{await store.create_login_link(db.pool, 'vi')}")
    browser = {"Accept": "text/event-stream", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Site": "same-site"}
    async with client.get("/import/events", headers={**browser, "Origin": DASHBOARD}) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        assert resp.headers["Access-Control-Allow-Origin"] == DASHBOARD
        assert resp.headers["Access-Control-Allow-Credentials"] == "true"
        assert (await SseStream(resp).next()).event == "snapshot"
    async with client.get("/import/events", headers={**browser, "Origin": "https://evil.example"}) as resp:
        # The browser gets no leave to show this answer to the other origin's page.
        assert "Access-Control-Allow-Origin" not in resp.headers
        assert "Access-Control-Allow-Credentials" not in resp.headers
    client.session.cookie_jar.clear()
    async with client.get("/import/events", headers={**browser, "Origin": DASHBOARD}) as resp:
        assert resp.status == 401  # it was the cookie that signed the stream in


async def test_a_job_and_a_hand_edit_name_who_made_them(client, browser_client, config, db):
    write_csv(config.import_dir / "a.csv", [HEADER, row(1, "A1")])
    job = await (await client.post("/import", json={"path": "a.csv"})).json()
    assert job["created_by"] == "token:test-admin"
    assert await db.value("SELECT created_by FROM import_jobs WHERE id = %s", (job["id"],)) == "token:test-admin"
    assert (await (await client.get(f"/import/jobs/{job['id']}")).json())["created_by"] == "token:test-admin"

    person = await browser_client("editor", name="eve")
    created = await (await person.post("/customers", json={"customer_id": "M1"})).json()
    assert created["updated_manually_by"] == "eve"
    patched = await (await client.patch(f"/customers/{created['id']}", json={"city": "Oslo"})).json()
    assert patched["updated_manually_by"] == "token:test-admin"
    assert await db.value("SELECT updated_manually_by FROM customers WHERE customer_id = 'M1'") == "token:test-admin"


async def test_openapi_declares_the_bearer_scheme_and_each_routes_role(client):
    spec = await (await client.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": spec["components"]["securitySchemes"]["bearer"]["description"]}
    paths = spec["paths"]
    assert paths["/customers"]["get"]["x-required-role"] == "viewer"
    assert paths["/customers"]["post"]["x-required-role"] == "editor"
    assert paths["/import"]["post"]["x-required-role"] == "admin"
    assert paths["/healthz"]["get"]["security"] == [] and "x-required-role" not in paths["/healthz"]["get"]
    assert "401" in paths["/customers"]["get"]["responses"] and "403" in paths["/customers"]["get"]["responses"]


async def test_a_dump_of_the_database_holds_no_password_and_no_token(client, browser_client, db, db_url, tmp_path):
    password = "Tr0ub4dor&3-unique-password"
    await store.add_user(db.pool, "pat", Role.admin, password)
    token = await store.create_token(db.pool, "dump-token", Role.viewer)
    link = await store.create_login_link(db.pool, "pat")
    person = await browser_client("viewer")
    session_id = next(c.value for c in person.session.cookie_jar)
    assert (await person.get("/customers")).status == 200
    resp = await client.post("/login", data={"name": "pat", "password": password}, allow_redirects=False)
    assert resp.status == 303
    dump = subprocess.run([str(Path(psql_path()).with_name("pg_dump")), "--data-only", db_url],
                          capture_output=True, text=True, check=True).stdout
    assert "dump-token" in dump and "pat" in dump  # the dump is of the right database
    secrets = {"password": password, "token": token, "token's secret": token.removeprefix(store.TOKEN_PREFIX),
               "sign-in link": link, "client test token": client.token}
    assert [what for what, secret in secrets.items() if secret in dump] == []
    assert session_id not in dump
