"""The customer fields, described once.

Each field knows its name (the JSON field and the table column), the header
names a file may use for it, its type and length limit. The parser, the API
models, the export and the import preview read this table; SQL column lists
stay in sql/*.sql, and tests/test_fields.py holds them equal to it.
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
    max_length: int | None = None              # characters; None: unbounded
    required: bool = False
    aliases: tuple[str, ...] = ()              # more header names that mean this field

    def header_keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(normalise_name(n) for n in (self.name, self.label, *self.aliases)))


# The fields a file can fill, in COPY order (the import writer's column list).
IMPORTED: tuple[Field, ...] = (
    Field("customer_id", "Customer Id", max_length=64, required=True),
    Field("first_name", "First Name"),
    Field("last_name", "Last Name"),
    Field("company", "Company"),
    Field("city", "City"),
    Field("country", "Country"),
    Field("phone_1", "Phone 1"),
    Field("phone_2", "Phone 2"),
    Field("email", "Email"),
    Field("subscription_date", "Subscription Date", kind="date"),
    Field("website", "Website"),
    Field("about", "About Customer", aliases=("about",)),
)
BY_NAME = {f.name: f for f in IMPORTED}
IMPORTED_NAMES = tuple(f.name for f in IMPORTED)
# Header names that are known but deliberately not stored.
IGNORED_HEADERS = ("index",)
# The customer as the API and the export show it: the table's own columns around the imported ones.
CUSTOMER_FIELDS = ("id", *IMPORTED_NAMES, "created_at", "updated_at", "updated_manually_at",
                   "updated_manually_by")
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
