"""The database a test gets is as new as a fresh copy of the migrated template, though it is
one database emptied between tests (tests/databases.py)."""
from __future__ import annotations

import contextlib

import psycopg2
import pytest

from server import schema
from server.db import with_database
from tests.databases import WorkerDatabase


@pytest.fixture
def databases(server_url, template_db):
    own = WorkerDatabase(server_url, template_db)
    yield own
    own.close()


def run(url: str, *statements: str) -> list:
    with contextlib.closing(psycopg2.connect(url)) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
            return cur.fetchall() if cur.description else []


STATE = ("SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM customer_search), "
         "(SELECT count(*) FROM import_jobs), (SELECT count(*) FROM pg_statistic WHERE starelid = 'customers'::regclass), "
         "(SELECT reltuples FROM pg_class WHERE oid = 'customer_search'::regclass), "
         "nextval('import_jobs_id_seq'), nextval('import_event_seq')")


def test_what_a_test_wrote_is_gone_for_the_next_and_a_changed_schema_is_a_new_copy(databases, server_url):
    first = with_database(server_url, databases.take())
    fresh = run(first, STATE)
    migrated = schema.dump(first)
    run(first, "INSERT INTO customers (customer_id, first_name) SELECT 'C' || i, 'Ann' FROM generate_series(1, 500) i",
        "INSERT INTO import_jobs (filename, path, bytes_total) VALUES ('a.csv', '/a.csv', 10)",
        "ANALYZE customers, customer_search", "SELECT nextval('import_event_seq')")

    second = with_database(server_url, databases.take())
    assert second == first  # emptied, not copied
    assert run(second, STATE) == fresh

    run(second, "ALTER TABLE import_jobs ADD CONSTRAINT few CHECK (bytes_total < 5)")
    third = with_database(server_url, databases.take())
    assert third != second  # a fresh copy
    assert run(third, STATE) == fresh
    assert schema.dump(third) == migrated


def test_a_session_a_test_left_open_goes_with_its_database(databases, server_url):
    first = with_database(server_url, databases.take())
    left_open = psycopg2.connect(first)  # as a server the test did not stop would hold it
    try:
        left_open.cursor().execute("SELECT pg_advisory_lock(7)")
        second = with_database(server_url, databases.take())
        assert second != first
        assert run(second, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                   "(SELECT oid FROM pg_database WHERE datname = current_database())") == [(0,)]
        databases.thread.submit(lambda: None).result()  # after the drop of the first
        with pytest.raises(psycopg2.OperationalError):  # ended by it
            left_open.cursor().execute("SELECT 1")
    finally:
        left_open.close()
