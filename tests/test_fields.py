"""The one description of the customer fields (server/fields.py) and the SQL that must agree with it."""
from __future__ import annotations

import re

import pytest

from server import fields
from server.importer.header import HEADER_NAMES, suggestions
from server.sqlfiles import queries


def column_list(text: str, after: str) -> list[str]:
    """The identifiers of the first parenthesised list after `after`, or of the SELECT list before FROM."""
    start = text.index(after) + len(after)
    body = text[start:text.index(")", start)] if after.endswith("(") else text[start:text.index("FROM", start)]
    return [re.split(r"\s+", part.strip())[0] for part in body.split(",") if part.strip()]


def test_the_import_writers_column_lists_are_the_imported_fields_in_copy_order():
    sql = queries("import_writer")
    expected = [*fields.IMPORTED_NAMES, "import_job_id"]
    # New customers come with ids reserved from the sequence first (their search rows need them).
    assert column_list(sql["copy_customers"], "COPY customers (") == ["id", *expected]
    assert column_list(sql["create_stage"], "import_stage (") == expected
    assert column_list(sql["upsert_from_stage"], "INSERT INTO customers AS c (") == expected


@pytest.mark.parametrize("name", ["page", "search_page", "by_id"])
def test_every_customer_query_returns_the_customer_fields_in_order(name):
    assert column_list(queries("customers")[name], "SELECT ") == list(fields.CUSTOMER_FIELDS)


def test_the_export_and_the_api_read_the_same_table():
    from server import customers

    assert customers.FIELDS == fields.CUSTOMER_FIELDS
    assert customers.EDITABLE == fields.IMPORTED_NAMES


def test_header_names_match_loosely_and_suggest_close_fields():
    assert HEADER_NAMES["customerid"] == "customer_id" and HEADER_NAMES["aboutcustomer"] == "about"
    assert HEADER_NAMES["index"] is None
    assert suggestions("FIRSNAME")[0] == "first_name"
    assert suggestions("E-Mial")[0] == "email"
    assert suggestions("zzzz") == []
