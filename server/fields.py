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
import sys
from typing import Literal

_NOT_NAME_CHARS = re.compile(r"[\s_\-]+")
# A shape check, the contract's `local@domain.tld`, no spaces: only a mail sent proves an address.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
# Phone-like: digits with the usual separators, an optional extension (397.884.0519x718, +1-650-432-0491).
_PHONE = re.compile(r"\+?[\d\s().\-/]+(?:\s*(?:x|ext\.?|#)\s*\d+)?", re.IGNORECASE)
_MIN_PHONE_DIGITS = 5
# A web address, with or without its scheme: a host with a dot and a top-level name, no spaces.
_URL = re.compile(r"(?:https?://)?(?:[^\s/@:.]+\.)+[a-z][a-z0-9-]*(?::\d+)?(?:[/?#]\S*)?", re.IGNORECASE)


def is_email(value: str) -> bool:
    return _EMAIL.fullmatch(value) is not None


def is_phone(value: str) -> bool:
    return _PHONE.fullmatch(value) is not None and sum(c.isdigit() for c in value) >= _MIN_PHONE_DIGITS


def is_url(value: str) -> bool:
    return _URL.fullmatch(value) is not None


# Shape -> its check; "date" depends on the job's layout (server/importer/dates.py reads it).
SHAPES = {"email": is_email, "phone": is_phone, "url": is_url}
# Format -> its check: what Field.problem refuses, for an importer that checks millions of values.
FORMAT_CHECKS = {"email": is_email}


@dataclasses.dataclass(frozen=True)
class Field:
    name: str                                  # JSON field and column of `customers`
    label: str                                 # the header name in Datablist's sample and the export
    # text: the trimmed cell, empty is null; date: a cell in the job's date layout
    # (server/importer/dates.py), stored and exported as an ISO date.
    kind: Literal["text", "date"] = "text"
    # Characters; None: unbounded. The API, the form and the import all hold text to it
    # (an import rejects the row, naming the field and its limit).
    max_length: int | None = None
    required: bool = False
    aliases: tuple[str, ...] = ()              # more header names that mean this field
    format: Literal["email"] | None = None     # a shape the API and the import check (OpenAPI names it)
    # What its values look like, for the preview's value check (SHAPES; "date": the job's date layout).
    shape: Literal["email", "date", "phone", "url"] | None = None
    # The form's control: an <input type> or "textarea".
    input: Literal["text", "tel", "email", "url", "date", "textarea"] = "text"
    # The form edits customers, not the person at the keyboard: the browser offers none of
    # their own details.
    autocomplete: str = "off"

    def header_keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(normalise_name(n) for n in (self.name, self.label, *self.aliases)))

    def problem(self, value: str) -> str | None:
        """Why a (trimmed, non-empty) text value cannot be stored in this field, in words; None: it can.

        The one check of the import (a reject's reason) and the API (a 422 naming the field).
        """
        if self.max_length is not None and len(value) > self.max_length:
            return f"is longer than {self.max_length} characters"
        if self.format is not None and not FORMAT_CHECKS[self.format](value):
            return f"{value[:40]!r} is not an email address (local@domain.tld, no spaces)"
        return None


# The fields a file can fill, in COPY order (the import writer's column list).
TEXT = 255  # the API's limit for a short text field
IMPORTED: tuple[Field, ...] = (
    Field("customer_id", "Customer Id", max_length=64, required=True),
    Field("first_name", "First Name", max_length=TEXT),
    Field("last_name", "Last Name", max_length=TEXT),
    Field("company", "Company", max_length=TEXT),
    Field("city", "City", max_length=TEXT),
    Field("country", "Country", max_length=TEXT),
    Field("phone_1", "Phone 1", max_length=TEXT, shape="phone", input="tel"),
    Field("phone_2", "Phone 2", max_length=TEXT, shape="phone", input="tel"),
    Field("email", "Email", max_length=TEXT, format="email", shape="email", input="email"),
    Field("subscription_date", "Subscription Date", kind="date", shape="date", input="date"),
    Field("website", "Website", max_length=TEXT, shape="url", input="url"),
    # A million: a value as long as the engine's default record (MAX_RECORD_BYTES, 1 MiB) allows.
    Field("about", "About Customer", max_length=1_000_000, aliases=("about",), input="textarea"),
)
BY_NAME = {f.name: f for f in IMPORTED}
IMPORTED_NAMES = tuple(f.name for f in IMPORTED)
# Header names that are known but deliberately not stored.
IGNORED_HEADERS = ("index",)
# The customer as the API and the export show it: the table's own columns around the imported ones.
CUSTOMER_FIELDS = ("id", *IMPORTED_NAMES, "created_at", "updated_at", "updated_manually_at",
                   "updated_manually_by")
# Columns of `customers` no API or export shows: the job that wrote the row last, its line (sql/021_*)
# and that line's digest (sql/023_*).
TABLE_ONLY = ("import_job_id", "import_line", "import_digest")
EDITABLE = IMPORTED_NAMES
CUSTOMER_ID = IMPORTED_NAMES.index("customer_id")
SUBSCRIPTION_DATE = IMPORTED_NAMES.index("subscription_date")
MAX_CUSTOMER_ID = BY_NAME["customer_id"].max_length
# The text fields an import checks each value of: (COPY position, length limit, has a format, field).
CHECKED = tuple((i, f.max_length or sys.maxsize, f.format is not None, f)
                for i, f in enumerate(IMPORTED) if f.kind == "text" and (f.max_length or f.format))


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
