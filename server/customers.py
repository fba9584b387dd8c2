"""Customers as the API sees them (aiopg): keyset pages, search, edits, export.

Data functions take the pool first and raise domain errors, not HTTP ones.
A customer leaves here as a JSON-ready dict (dates and times as ISO 8601).
"""
from __future__ import annotations

import base64
import binascii
import re
from collections.abc import AsyncIterator, Mapping
from datetime import date, datetime, timedelta, timezone

import aiopg
import psycopg2.errors

from .fields import CUSTOMER_FIELDS, EDITABLE
from .errors import Conflict, DomainError, NotFound
from .sqlfiles import queries

SQL = queries("customers")

# The JSON fields, the table's columns and the export's header: one order (server/fields.py).
FIELDS = CUSTOMER_FIELDS
EXPORT_PAGE = 250  # rows a page of the export: read and decoded on the loop in about 2 ms
MAX_ID = 2**63 - 1  # bigint
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_CURSOR_TEXT = re.compile(r"[0-9]{1,19}")


class CustomerNotFound(NotFound):
    def __init__(self, customer: object):
        super().__init__(f"there is no customer {customer}")


class CustomerIdTaken(Conflict):
    def __init__(self, customer_id: str):
        super().__init__(f"another customer has customer_id {customer_id!r}")
        self.customer_id = customer_id

    def body(self) -> dict:
        return {"error": str(self), "field": "customer_id"}


class CustomerChanged(DomainError):
    """If-Match named a version the customer no longer is at."""

    status = 412

    def __init__(self, customer: dict):
        super().__init__(f"customer {customer['id']} has changed since that version; "
                         "this is the current one")
        self.customer = customer

    def body(self) -> dict:
        return {"error": str(self), "etag": etag(self.customer), "customer": self.customer}

    def headers(self) -> dict[str, str]:
        return {"ETag": etag(self.customer)}


def encode_cursor(last_id: int) -> str:
    """An opaque cursor: the last id of a page, which clients should not rely on."""
    return base64.urlsafe_b64encode(str(last_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id a cursor stands for; ValueError when it is not one of ours."""
    try:
        text = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not a cursor this API gave out") from None
    if not _CURSOR_TEXT.fullmatch(text.decode("ascii", "replace")) or int(text) > MAX_ID:
        raise ValueError("not a cursor this API gave out")
    return int(text)


def version(customer: Mapping) -> int:
    """updated_at in epoch microseconds: what ETags carry and If-Match gives back."""
    updated_at = datetime.fromisoformat(customer["updated_at"])
    return (updated_at - _EPOCH) // timedelta(microseconds=1)


def etag(customer: Mapping) -> str:
    # Strong: the same id and updated_at always give the same bytes.
    return f'"{customer["id"]}-{version(customer)}"'


# The index is asked for a query's first twelve characters only: they select
# well, and each further trigram adds a posting list to intersect.
INDEXED_CHARS = 12
_WORD = re.compile(r"[^\W_]+")  # letters and digits: a word to pg_trgm


def like_pattern(q: str) -> str:
    """`q` as a LIKE substring pattern, its wildcards taken literally."""
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def proposed_pattern(q: str) -> str:
    """A LIKE pattern for roughly the rows the trigram index proposes for `q`.

    pg_trgm cuts text into words of letters and digits. From the query it
    takes trigrams of every word of three or more, of a shorter word that
    follows a separator (a word start, padded: '  q'), and of a two-letter
    word before one (a word end: 'ng '); nothing of the rest. Rows holding
    those words are about the rows it proposes; the pattern wants them in
    order, the index does not. An estimate only: it never decides a result.
    """
    words = [m.group() for m in _WORD.finditer(q)
             if len(m.group()) >= 3 or m.start() > 0 or (len(m.group()) == 2 and m.end() < len(q))]
    return "%" + "%".join(words) + "%" if words else "%"


async def page(pool: aiopg.Pool, *, limit: int, after: int = 0,
               q: str | None = None) -> tuple[list[dict], int | None]:
    """Up to `limit` customers with ids above `after`, and the id to go on from (or None)."""
    rows = await _page(pool, limit + 1, after, q)  # one more says whether there is a next page
    items = [_customer(row) for row in rows[:limit]]
    return items, (items[-1]["id"] if len(rows) > limit else None)


async def _page(pool: aiopg.Pool, limit: int, after: int, q: str | None) -> list[tuple]:
    async with pool.acquire() as conn, conn.cursor() as cur:
        if q:
            indexed = q[:INDEXED_CHARS]
            await cur.execute(SQL["search_page"], {
                "after": after, "limit": limit, "pattern": like_pattern(q),
                "index_pattern": like_pattern(indexed), "proposed": proposed_pattern(indexed)})
        else:
            await cur.execute(SQL["page"], {"after": after, "limit": limit})
        return await cur.fetchall()


async def get(pool: aiopg.Pool, customer_id: int) -> dict:
    customer = await _one(pool, SQL["by_id"], {"id": customer_id})
    if customer is None:
        raise CustomerNotFound(customer_id)
    return customer


async def create(pool: aiopg.Pool, fields: Mapping[str, object], by: str | None = None) -> dict:
    """A new customer, edited by hand by `by` (who is signed in)."""
    params = {name: fields.get(name) for name in EDITABLE}
    params["by"] = by
    try:
        return await _one(pool, SQL["create"], params)
    except psycopg2.errors.UniqueViolation:
        raise CustomerIdTaken(params["customer_id"]) from None


async def update(pool: aiopg.Pool, customer_id: int, changes: Mapping[str, object],
                 versions: list[int] | None = None, by: str | None = None) -> dict:
    """Change the fields in `changes` (by `by`); with `versions`, only if the customer is at one of them."""
    params = {name: changes.get(name) for name in EDITABLE}
    params.update(id=customer_id, present=[name for name in EDITABLE if name in changes], versions=versions,
                  by=by)
    try:
        customer = await _one(pool, SQL["update"], params)
    except psycopg2.errors.UniqueViolation:
        raise CustomerIdTaken(changes["customer_id"]) from None
    if customer is None:
        raise CustomerChanged(await get(pool, customer_id))  # get raises when it is absent
    return customer


async def delete(pool: aiopg.Pool, customer_id: int, versions: list[int] | None = None) -> None:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(SQL["delete"], {"id": customer_id, "versions": versions})
        if await cur.fetchone() is None:
            raise CustomerChanged(await get(pool, customer_id))


async def export_rows(pool: aiopg.Pool, q: str | None = None,
                      page_size: int = EXPORT_PAGE) -> AsyncIterator[tuple]:
    """Every customer (or those matching q) in id order, a page at a time: constant memory.

    The connection goes back to the pool between pages, so a slow download
    never holds one. Rows come as the database gives them (dates as dates):
    the export formats them off the loop.
    """
    after = 0
    while True:
        rows = await _page(pool, page_size, after, q)
        for row in rows:
            yield row
        if len(rows) < page_size:
            return
        after = rows[-1][0]


async def _one(pool: aiopg.Pool, query: str, params: dict) -> dict | None:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(query, params)
        row = await cur.fetchone()
        return None if row is None else _customer(row)


def _customer(row: tuple) -> dict:
    return {name: _plain(value) for name, value in zip(FIELDS, row)}


def _plain(value: object) -> object:
    return value.isoformat() if isinstance(value, (date, datetime)) else value
