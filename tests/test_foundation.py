"""The skeleton: configuration, migrations, health and the page."""
import dataclasses
from pathlib import Path

import pytest

from server.config import Config, ConfigError
from tests.processes import REPO


async def test_healthz_answers_when_the_database_does(client):
    resp = await client.get("/healthz")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ok"
    assert set(body["loop_lag_ms"]) == {"p50", "p99"}


@pytest.mark.slow
async def test_healthz_gives_the_loop_lag_of_the_last_seconds_asked_for(client):
    import asyncio
    import time

    await asyncio.sleep(0.5)
    whole = (await (await client.get("/healthz")).json())["loop_lag_ms"]
    assert whole["p99"] is not None
    # The loop wakes up 250 ms late, eight times: far more than a loaded test host adds.
    for _ in range(8):
        time.sleep(0.25)
        await asyncio.sleep(0.011)
    await asyncio.sleep(0.6)
    recent = (await (await client.get("/healthz", params={"lag_seconds": "0.4"})).json())["loop_lag_ms"]
    assert recent["p99"] < 125  # the last 0.4 s hold no such sample
    last = (await (await client.get("/healthz", params={"lag_seconds": "5"})).json())["loop_lag_ms"]
    assert last["p99"] > 200


async def test_the_page_renders(client):
    resp = await client.get("/")
    assert resp.status == 200
    assert "text/html" in resp.headers["Content-Type"]
    assert "Customer import" in await resp.text()


async def test_the_favicon_is_an_icon_anyone_may_fetch(anonymous_client):
    resp = await anonymous_client.get("/favicon.ico")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "image/x-icon"
    body = await resp.read()
    assert body[:4] == b"\x00\x00\x01\x00"  # an ICO header: the first icon of a set


async def test_migrations_created_the_tables_with_the_contract_names(client, db):
    columns = {row[0] for row in await db.all(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'customers'")}
    assert {"id", "customer_id", "first_name", "last_name", "company", "city", "country",
            "phone_1", "phone_2", "email", "subscription_date", "website", "about",
            "created_at", "updated_at", "updated_manually_at"} <= columns
    versions = [row[0] for row in await db.all("SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions[0] == "001_initial"


async def test_migrating_again_applies_nothing(client, db):
    from server.db import migrate
    from server.keys import pool_key

    assert await migrate(client.app[pool_key]) == []


def test_config_defaults_work_on_a_laptop():
    config = Config.from_env({})
    assert config.database_url is None
    assert (config.host, config.port) == ("127.0.0.1", 8080)
    assert config.data_dir == Path("var").absolute()
    assert config.import_dir == Path("var/imports").absolute()


def test_import_dir_follows_data_dir():
    config = Config.from_env({"DATA_DIR": "/srv/csv"})
    assert config.import_dir == Path("/srv/csv/imports")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PORT": "eighty"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"REJECT_LIMIT": "-1"}, "REJECT_LIMIT"),
        ({"UPLOAD_MAX_BYTES": "lots"}, "UPLOAD_MAX_BYTES"),
        ({"WORKER_POLL_SECONDS": "0"}, "WORKER_POLL_SECONDS"),
        ({"IMPORT_BATCH_BYTES": str(512 * 1024**2)}, "IMPORT_BATCH_BYTES must be from 65536 to 268435456"),
        ({"UPLOADS_MAX_CONCURRENT": "0"}, "UPLOADS_MAX_CONCURRENT"),
        ({"UPLOAD_MIN_FREE_BYTES": "1GB"}, "UPLOAD_MIN_FREE_BYTES"),
        ({"UPLOAD_STALL_SECONDS": "-5"}, "UPLOAD_STALL_SECONDS"),
        ({"MULTIPART_MAX_PARTS": "100000"}, "MULTIPART_MAX_PARTS"),
        ({"SSE_MAX_STREAMS": "none"}, "SSE_MAX_STREAMS"),
        ({"SSE_SEND_TIMEOUT_SECONDS": "0"}, "SSE_SEND_TIMEOUT_SECONDS"),
        ({"EXPORTS_MAX_CONCURRENT": "0"}, "EXPORTS_MAX_CONCURRENT"),
    ],
)
def test_a_bad_value_names_the_variable(env, named):
    with pytest.raises(ConfigError, match=named):
        Config.from_env(env)


def declared_settings():
    from server.settings import SETTING

    return [(field, field.metadata[SETTING]) for field in dataclasses.fields(Config)]


def test_every_setting_is_declared_once_and_refuses_a_value_it_cannot_use():
    """One declaration per field (its variable, default, kind, doc), one field per variable;
    a value none of the kinds but free text takes is refused, naming the variable."""
    from server.settings import Text

    names = [declared.env for _, declared in declared_settings()]
    assert len(names) == len(set(names)) == len(dataclasses.fields(Config)) >= 40
    for field, declared in declared_settings():
        assert declared.doc and "\n" not in declared.doc, field.name
        if not isinstance(declared.kind, Text):
            with pytest.raises(ConfigError, match=declared.env):
                Config.from_env({declared.env: "\x00!"})


def test_the_defaults_are_what_an_empty_environment_reads():
    config, defaults = Config.from_env({}), Config()
    for field, _ in declared_settings():
        if field.name not in ("data_dir", "import_dir"):  # made absolute against the working directory
            assert getattr(config, field.name) == getattr(defaults, field.name), field.name


def test_the_configuration_page_lists_every_setting_as_declared():
    """docs/configuration.md's tables are the declarations' (./run.sh config-doc --write docs/configuration.md)."""
    from server.configdoc import with_tables

    page = (REPO / "docs" / "configuration.md").read_text()
    assert page == with_tables(page), "run ./run.sh config-doc --write docs/configuration.md"
    for _, declared in declared_settings():
        assert f"| `{declared.env}` |" in page


def test_config_doc_prints_the_tables_whatever_the_environment_holds():
    from server.config import configuration_tables
    from tests.processes import cli, server_env

    proc = cli("config-doc", env=server_env(LOG_FORMAT="xml", PORT="eighty"))
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out) == (0, configuration_tables()), err
