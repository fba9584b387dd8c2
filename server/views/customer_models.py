"""The customer as the API takes and gives it, built from the one description in server/fields.py.

A field's type, length limit and format there become a pydantic type here,
so validation, the OpenAPI schema (/openapi.json) and the page's form agree.
"""
from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any

import pydantic
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, StringConstraints

from ..fields import IMPORTED, Field

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _blank_is_null(value: object) -> object:
    # As in imports: an empty value is null, so the table never holds ''.
    return None if isinstance(value, str) and not value.strip() else value


def no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not hold a NUL byte")  # PostgreSQL text cannot store it
    return value


def _checked(field: Field) -> AfterValidator:
    """The field's own check (server/fields.py), the one an import applies to the same value."""
    def check(value: str) -> str:
        problem = field.problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    return AfterValidator(check)


def _iso_date(value: object) -> object:
    """YYYY-MM-DD and nothing else (no timestamps, no numbers); blank is null."""
    value = _blank_is_null(value)
    if value is None:
        return None
    if not isinstance(value, str) or not _DATE.fullmatch(value.strip()):
        raise ValueError("must be a date as YYYY-MM-DD, or null")
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError("is not a date of the calendar") from None


def _trim(value: object) -> object:
    """Trim as the importer trims every cell: Python's str.strip.

    pydantic's strip_whitespace knows fewer spaces (not the separators
    U+001C to U+001F), so the API would keep a customer_id that an import of
    the same cell stores as another one.
    """
    return value.strip() if isinstance(value, str) else value


def input_type(field: Field) -> Any:
    """What the API accepts for a field: trimmed, limited text (or null), or an ISO date (or null)."""
    if field.kind == "date":
        return Annotated[date | None, BeforeValidator(_iso_date),
                         pydantic.WithJsonSchema({"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]})]
    checks: list[Any] = [_checked(field)]
    if field.format:
        schema: dict[str, str | int] = {"type": "string", "format": field.format}
        if field.max_length is not None:
            schema["maxLength"] = field.max_length
        checks.append(pydantic.WithJsonSchema(schema))
    min_length = 1 if field.required else None
    text = Annotated[str, StringConstraints(min_length=min_length, max_length=field.max_length),
                     AfterValidator(no_nul), *checks, BeforeValidator(_trim)]
    if field.required:
        return text
    return Annotated[text | None, BeforeValidator(_blank_is_null)]


def output_type(field: Field) -> Any:
    value = date if field.kind == "date" else str
    return value if field.required else value | None


class _Strict(BaseModel):
    # Strict: 5 is not a name and 1620000000 is not a date. A field the API does not know is 422.
    model_config = ConfigDict(extra="forbid", strict=True)


def _editable(name: str, doc: str, *, required_has_default: bool) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for field in IMPORTED:
        default = ... if field.required and not required_has_default else None
        fields[field.name] = (input_type(field), pydantic.Field(default, title=field.label))
    return pydantic.create_model(name, __base__=_Strict, __doc__=doc, __module__=__name__, **fields)


CustomerCreate = _editable("CustomerCreate", "A new customer. Only customer_id is required.",
                           required_has_default=False)
# customer_id may be left out (it keeps its value), not sent as null.
CustomerPatch = _editable("CustomerPatch", "The fields to change; those left out keep their values. "
                                           "customer_id cannot be null.", required_has_default=True)

_customer_fields: dict[str, Any] = {
    "id": (int, ...),
    **{field.name: (output_type(field), pydantic.Field(..., title=field.label)) for field in IMPORTED},
    "created_at": (str, ...),
    "updated_at": (str, ...),
    "updated_manually_at": (str | None, ...),
    "updated_manually_by": (str | None, pydantic.Field(
        ..., description="who edited it by hand last (a user, or token:NAME)")),
}
Customer = pydantic.create_model("Customer", __doc__="A customer.", __module__=__name__, **_customer_fields)
