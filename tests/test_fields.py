"""The one description of the customer fields (server/fields.py) and the SQL that must agree with it."""
from __future__ import annotations

import csv
import io
import json
import re
from html.parser import HTMLParser

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
    # And the line of the file that wrote each, which the pipelines' upsert checks (sql/021_*),
    # and that line's digest, which a re-import's look-up checks (sql/023_*).
    written = [*expected, "import_line", "import_digest"]
    assert column_list(sql["copy_customers"], "COPY customers (") == ["id", *written]
    assert column_list(sql["create_stage"], "import_stage (") == expected
    assert column_list(sql["insert_from_stage"], "INSERT INTO customers AS c (") == written


def test_the_upsert_compares_and_sets_every_imported_field_but_the_key_when_the_file_has_it():
    update = queries("import_writer")["update_from_stage"]
    but_the_key = [name for name in fields.IMPORTED_NAMES if name != "customer_id"]
    assert re.findall(r"(\w+) = CASE WHEN '(\w+)' = ANY", update) == [(name, name) for name in but_the_key]
    assert re.findall(r"'(\w+)' = ANY\(%\(present\)s\) AND s\.(\w+) IS DISTINCT FROM o\.(\w+)", update) == \
        [(name, name, name) for name in but_the_key]
    # An undo gives each of them back (the key never changes by an import).
    restore = queries("import_undo")["slice"]
    assert re.findall(r"(\w+) = CASE WHEN b\.old \? '(\w+)'", restore) == [(name, name) for name in but_the_key]


async def test_the_customers_table_has_a_column_of_each_field_of_its_type(db):
    columns = {name: (kind, nullable == "YES") for name, kind, nullable in await db.all(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = 'customers'")}
    assert set(columns) == {*fields.CUSTOMER_FIELDS, *fields.TABLE_ONLY}
    for field in fields.IMPORTED:
        assert columns[field.name] == (field.kind, not field.required), field.name
    checks = " ".join(row[0] for row in await db.all(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'customers'::regclass AND contype = 'c'"))
    assert f"length(customer_id) <= {fields.MAX_CUSTOMER_ID}" in checks


def test_the_api_models_are_the_fields():
    from server.views.customer_models import Customer, CustomerCreate, CustomerPatch

    assert list(Customer.model_fields) == list(fields.CUSTOMER_FIELDS)
    for model in (CustomerCreate, CustomerPatch):
        schema = model.model_json_schema()
        assert list(schema["properties"]) == list(fields.IMPORTED_NAMES)
        assert schema.get("required", []) == ([f.name for f in fields.IMPORTED if f.required]
                                              if model is CustomerCreate else [])
        for field in fields.IMPORTED:
            prop = schema["properties"][field.name]
            text = next(s for s in prop.get("anyOf", [prop]) if s["type"] == "string")
            assert text.get("maxLength") == field.max_length, field.name
            assert text.get("format") == ("date" if field.kind == "date" else field.format), field.name


class _Controls(HTMLParser):
    """The customer form's controls: (tag, attributes) in document order, and the labels."""

    def __init__(self):
        super().__init__()
        self.controls: list[tuple[str, dict]] = []
        self.labels: dict[str, str] = {}
        self._label: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("input", "textarea") and (attrs.get("id") or "").startswith("f-"):
            self.controls.append((tag, attrs))
        elif tag == "label" and (attrs.get("for") or "").startswith("f-"):
            self._label = attrs["for"]

    def handle_data(self, data):
        if self._label:
            self.labels[self._label] = data.strip()
            self._label = None


async def test_the_pages_form_has_a_control_for_each_field_as_described(client):
    resp = await client.get("/")
    assert resp.status == 200
    page = _Controls()
    page.feed(await resp.text())
    assert [attrs["name"] for _, attrs in page.controls] == list(fields.IMPORTED_NAMES)
    for (tag, attrs), field in zip(page.controls, fields.IMPORTED):
        assert page.labels[attrs["id"]] == field.label
        assert (tag if tag == "textarea" else attrs["type"]) == field.input
        assert attrs.get("maxlength") == (str(field.max_length) if field.max_length else None)
        assert ("required" in attrs) == field.required
        assert attrs["autocomplete"] == field.autocomplete


@pytest.mark.parametrize("name", ["page", "search_rows", "by_id"])
def test_every_customer_query_returns_the_customer_fields_in_order(name):
    assert column_list(queries("customers")[name], "SELECT ") == list(fields.CUSTOMER_FIELDS)


async def test_the_api_and_the_export_show_each_field_under_its_own_name(client):
    """Each field's value comes back under its name, from the API and the export alike: a query
    whose columns are out of step with the field list would show one field's value under another."""
    sent = {f.name: "2021-02-03" if f.kind == "date" else "e@mail.example" if f.format == "email"
            else f"value of {f.name}" for f in fields.IMPORTED}
    resp = await client.post("/customers", json=sent)
    assert resp.status == 201, await resp.text()
    got = await (await client.get(f"/customers/{(await resp.json())['id']}")).json()
    assert list(got) == list(fields.CUSTOMER_FIELDS)
    assert {name: got[name] for name in fields.IMPORTED_NAMES} == sent
    export = list(csv.reader(io.StringIO(await (await client.get("/customers.csv")).text())))
    assert export[0] == list(fields.CUSTOMER_FIELDS)
    assert {name: value for name, value in zip(export[0], export[1]) if name in sent} == sent


def test_header_names_match_loosely_and_suggest_close_fields():
    assert HEADER_NAMES["customerid"] == "customer_id" and HEADER_NAMES["aboutcustomer"] == "about"
    assert HEADER_NAMES["index"] is None
    assert suggestions("FIRSNAME")[0] == "first_name"
    assert suggestions("E-Mial")[0] == "email"
    assert suggestions("zzzz") == []


async def test_history_records_a_change_of_each_imported_field(db):
    new = {name: f"v-{name}" for name in fields.IMPORTED_NAMES}
    changes = await db.value("SELECT customer_changes('{}', %s::jsonb)", (json.dumps(new),))
    assert set(changes) == set(fields.IMPORTED_NAMES)
