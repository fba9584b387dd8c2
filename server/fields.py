"""The customer fields, described once.

Each field knows its name (the JSON field and the table column), the header
names a file may use for it, its type, length limit and format, and how the
page's form asks for it. The parser, the API models (server/views/
customer_models.py), the export, the import preview and the page's form
(server/templates/index.html, which web_static/js/customer-form.js reads)
read this table; SQL column lists stay in sql/*.sql, and tests/test_fields.py
holds them and the customers table equal to it.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Literal

_NOT_NAME_CHARS = re.compile(r"[\s_\-]+")


@dataclasses.dataclass(frozen=True)
class Field:
    name: str                                  # JSON field and column of `customers`
    label: str                                 # the header name in Datablist's sample and the export
    # text: the trimmed cell, empty is null; date: a cell in the job's date layout
    # (server/importer/dates.py), stored and exported as an ISO date.
    kind: Literal["text", "date"] = "text"
    # Characters; None: unbounded. The API and the form hold text to it. An import holds
    # only customer_id to it (the column's CHECK) and takes longer text as the file has it.
    max_length: int | None = None
    required: bool = False
    aliases: tuple[str, ...] = ()              # more header names that mean this field
    format: Literal["email"] | None = None     # a shape the API checks (and OpenAPI names)
    # The form's control: an <input type> or "textarea".
    input: Literal["text", "tel", "email", "url", "date", "textarea"] = "text"
    # The form edits customers, not the person at the keyboard: the browser offers none of
    # their own details.
    autocomplete: str = "off"

    def header_keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(normalise_name(n) for n in (self.name, self.label, *self.aliases)))


# The fields a file can fill, in COPY order (the import writer's column list).
TEXT = 255  # the API's limit for a short text field
IMPORTED: tuple[Field, ...] = (
    Field("customer_id", "Customer Id", max_length=64, required=True),
    Field("first_name", "First Name", max_length=TEXT),
    Field("last_name", "Last Name", max_length=TEXT),
    Field("company", "Company", max_length=TEXT),
    Field("city", "City", max_length=TEXT),
    Field("country", "Country", max_length=TEXT),
    Field("phone_1", "Phone 1", max_length=TEXT, input="tel"),
    Field("phone_2", "Phone 2", max_length=TEXT, input="tel"),
    Field("email", "Email", max_length=TEXT, format="email", input="email"),
    Field("subscription_date", "Subscription Date", kind="date", input="date"),
    Field("website", "Website", max_length=TEXT, input="url"),
    Field("about", "About Customer", max_length=100_000, aliases=("about",), input="textarea"),
)
BY_NAME = {f.name: f for f in IMPORTED}
IMPORTED_NAMES = tuple(f.name for f in IMPORTED)
# Header names that are known but deliberately not stored.
IGNORED_HEADERS = ("index",)
# The customer as the API and the export show it: the table's own columns around the imported ones.
CUSTOMER_FIELDS = ("id", *IMPORTED_NAMES, "created_at", "updated_at", "updated_manually_at",
                   "updated_manually_by")
# Columns of `customers` no API or export shows: the job that wrote the row last.
TABLE_ONLY = ("import_job_id",)
EDITABLE = IMPORTED_NAMES
CUSTOMER_ID = IMPORTED_NAMES.index("customer_id")
SUBSCRIPTION_DATE = IMPORTED_NAMES.index("subscription_date")
MAX_CUSTOMER_ID = BY_NAME["customer_id"].max_length


def normalise_name(name: str) -> str:
    """Header names match case-insensitively, ignoring spaces, '_' and '-'."""
    return _NOT_NAME_CHARS.sub("", name).lower()


def header_names() -> dict[str, str | None]:
    """Normalised header name -> field name (None: known, not stored)."""
    names: dict[str, str | None] = {key: None for key in IGNORED_HEADERS}
    for field in IMPORTED:
        for key in field.header_keys():
            names[key] = field.name
    return names
