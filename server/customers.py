"""Customers as the API sees them (aiopg): keyset pages, search, edits, export.

Data functions take the pool first and raise domain errors, not HTTP ones.
A customer leaves here as a JSON-ready dict (dates and times as ISO 8601).
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import aiopg
import psycopg2.errors
from aiohttp import web

from .fields import CUSTOMER_FIELDS, EDITABLE
from .errors import Conflict, DomainError, NotFound
from .keys import pool_key, warming_key
from .sqlfiles import queries
from .tasks import cancel_and_wait

log = logging.getLogger(__name__)
SQL = queries("customers")

# The JSON fields, the table's columns and the export's header: one order (server/fields.py).
FIELDS = CUSTOMER_FIELDS
EXPORT_PAGE = 250  # rows a page of the export: read and decoded on the loop in about 2 ms
MAX_ID = 2**63 - 1  # bigint
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class CustomerNotFound(NotFound):
    def __init__(self, customer: object):
        super().__init__(f"there is no customer {customer}")


class CustomerIdTaken(Conflict):
    def __init__(self, customer_id: str):
        super().__init__(f"another customer has customer_id {customer_id!r}")
        self.customer_id = customer_id

    def body(self) -> dict:
        return {"error": str(self), "field": "customer_id"}


class CursorMismatch(DomainError):
    status = 422

    def __init__(self, sort: str):
        super().__init__(f"the cursor `after` belongs to another order than sort={sort}; "
                         "start again without it")


class SearchIsUnordered(DomainError):
    status = 422

    def __init__(self):
        super().__init__("a search (q) lists its matches in id order: sort, job and edited "
                         "apply to the list without q")


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


SORTS = ("id", "newest", "updated")
# Exact counts below this table size (about 30,000 customers), the planner's estimate above.
COUNT_BELOW_BYTES = 8 * 1024 * 1024
_CURSOR_FORMS = {
    "id": re.compile(r"(?P<id>[0-9]{1,19})"),
    "newest": re.compile(r"n(?P<id>[0-9]{1,19})"),
    "updated": re.compile(r"u(?P<at>-?[0-9]{1,19})\.(?P<id>[0-9]{1,19})"),
}


@dataclass(frozen=True)
class Cursor:
    """Where a page ended, in its order. Clients see it as an opaque string."""

    sort: str
    id: int
    at: int | None = None  # updated_at in epoch microseconds, for "updated"


def encode_cursor(last: int | Cursor) -> str:
    """An opaque cursor: the last row of a page in its order, which clients should not rely on."""
    if isinstance(last, int):
        last = Cursor("id", last)
    text = {"id": f"{last.id}", "newest": f"n{last.id}", "updated": f"u{last.at}.{last.id}"}[last.sort]
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Cursor:
    """The place a cursor stands for; ValueError when it is not one of ours."""
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not a cursor this API gave out") from None
    text = raw.decode("ascii", "replace")
    for sort, form in _CURSOR_FORMS.items():
        match = form.fullmatch(text)
        if match and int(match["id"]) <= MAX_ID:
            at = match.groupdict().get("at")
            return Cursor(sort, int(match["id"]), None if at is None else int(at))
    raise ValueError("not a cursor this API gave out")


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


@dataclass(frozen=True)
class SearchWords:
    """A query as customer_search_matching (sql/015_*) takes it.

    Words are cut at white space, each a LIKE pattern every row must hold,
    in any order. The longest word leads: it is checked first and its start
    is what the trigram index is asked for (a longer word has more trigrams
    and is usually the rarer). A query of white space only is one word.
    """

    pattern: str
    others: list[str]
    index_pattern: str
    proposed: list[str]

    @classmethod
    def of(cls, q: str) -> "SearchWords":
        words = list(dict.fromkeys(q.split())) or [q]
        lead = max(words, key=len)
        return cls(pattern=like_pattern(lead), others=[like_pattern(word) for word in words if word != lead],
                   index_pattern=like_pattern(lead[:INDEXED_CHARS]), proposed=proposed_patterns(lead[:INDEXED_CHARS]))


def proposed_patterns(q: str) -> list[str]:
    """LIKE patterns a row holds when the trigram index proposes it for `q`.

    pg_trgm cuts text into words of letters and digits. From the query it
    takes the trigrams of every word of three or more, of a shorter word that
    follows a separator (a word start, padded: '  q'), and of a two-letter
    word before one (a word end: 'ng '); nothing of the rest. The index
    proposes the rows that hold each of those trigrams, anywhere and in any
    order: `rand` brings every row with 'ran' and 'and'. A pattern a trigram
    (a short word stands for its padded ones); `['%']` when there is none
    and the index would propose every row. An estimate only: it never
    decides a result.
    """
    words = [m.group() for m in _WORD.finditer(q)
             if len(m.group()) >= 3 or m.start() > 0 or (len(m.group()) == 2 and m.end() < len(q))]
    grams = [word[i:i + 3] for word in words for i in range(len(word) - 2)] + [w for w in words if len(w) < 3]
    return [f"%{gram}%" for gram in dict.fromkeys(grams)] or ["%"]


@dataclass(frozen=True)
class ListFilter:
    """Which customers a list shows: those of one import, those edited by hand."""

    job: int | None = None
    edited: bool = False


@dataclass(frozen=True)
class Page:
    """A page in its order, the cursor to go on from (None on the last page), and
    whether a search stopped at its work budget before the page was full
    (`partial`): `next` then goes on from where it stopped, and more may match."""

    items: list[dict]
    next: Cursor | None
    partial: bool = False


# The work one search request may do (sql/022_*, docs/search.md): rows of
# customer_search read in id order, and rows the trigram index may propose.
# About 30 ms each at 10,000,000 customers on the benchmark's machine.
SEARCH_WALK_BUDGET = 150_000
SEARCH_CANDIDATE_BUDGET = 40_000


async def page(pool: aiopg.Pool, *, limit: int, after: Cursor | int | None = None, q: str | None = None,
               sort: str = "id", only: ListFilter = ListFilter()) -> Page:
    """Up to `limit` customers after the cursor in `sort` order, and the cursor to go on from.

    A search (q) comes in id order only, unfiltered: CursorMismatch otherwise.
    """
    if isinstance(after, int):
        after = Cursor("id", after)
    if after is not None and after.sort != sort:
        raise CursorMismatch(sort)
    if q and (sort != "id" or only != ListFilter()):
        raise SearchIsUnordered()
    # One row more than asked says whether there is a next page.
    searched_to = None
    if q:
        rows, searched_to = await _search(pool, limit + 1, after.id if after else 0, q)
    elif sort == "id":
        rows = await _page(pool, limit + 1, after.id if after else 0, only)
    else:
        params = {"limit": limit + 1, "job": only.job, "edited": only.edited,
                  "before": after.id if after else MAX_ID, "at": after.at if after else None}
        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(SQL["page_newest" if sort == "newest" else "page_updated"], params)
            rows = await cur.fetchall()
    items = [_customer(row) for row in rows[:limit]]
    if len(rows) <= limit:
        # Every match up to searched_to is on this page: the next one starts there.
        return Page(items, None if searched_to is None else Cursor("id", searched_to), searched_to is not None)
    last = rows[limit - 1]
    at = version({"updated_at": items[-1]["updated_at"]}) if sort == "updated" else None
    return Page(items, Cursor(sort, last[0], at))


async def _page(pool: aiopg.Pool, limit: int, after: int, only: ListFilter = ListFilter()) -> list[tuple]:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(SQL["page"], {"after": after, "limit": limit, "job": only.job, "edited": only.edited})
        return await cur.fetchall()


def _search_params(q: str) -> dict:
    words = SearchWords.of(q)
    return {"pattern": words.pattern, "others": words.others, "index_pattern": words.index_pattern,
            "proposed": words.proposed, "id_prefix": q.strip(), "walk_budget": SEARCH_WALK_BUDGET,
            "candidate_budget": SEARCH_CANDIDATE_BUDGET}


async def _search(pool: aiopg.Pool, limit: int, after: int, q: str) -> tuple[list[tuple], int | None]:
    """The first `limit` matches after `after`, and the id the search stopped at when its
    budget ran out first (every match up to it is among the rows), else None."""
    params = _search_params(q) | {"after": after, "limit": limit}
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(SQL["search_hits"], params)
        hits = await cur.fetchall()
        ids = [hit for hit, _ in hits if hit is not None]
        searched_to = next((to for _, to in hits if to is not None), None)
        await cur.execute(SQL["search_rows"], params | {"ids": ids, "upto": MAX_ID if searched_to is None
                                                        else searched_to})
        return await cur.fetchall(), searched_to


# A count of matches stops here: "more than 1,000 matches" is as useful as the
# exact figure, and counting further could read millions of rows.
MATCH_COUNT_CAP = 1000


@dataclass(frozen=True)
class Matches:
    """How many customers a search or a filter lists, up to a cap: `capped` when more
    do; `partial` when a search's work budget ran out first, so that at least
    `count` match (the count of the customers up to where it stopped)."""

    count: int
    capped: bool
    partial: bool = False


async def count_matches(pool: aiopg.Pool, q: str | None = None, only: ListFilter = ListFilter(),
                        cap: int = MATCH_COUNT_CAP) -> Matches:
    async with pool.acquire() as conn, conn.cursor() as cur:
        if q:
            await cur.execute(SQL["search_count"], _search_params(q) | {"cap": cap})
            found, searched_to = await cur.fetchone()
        else:
            await cur.execute(SQL["filter_count"], {"cap": cap, "job": only.job, "edited": only.edited})
            (found,), searched_to = await cur.fetchone(), None
        return Matches(min(int(found), cap), int(found) > cap, searched_to is not None and int(found) <= cap)


async def any_customers(pool: aiopg.Pool) -> bool:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(SQL["any_customers"])
        return bool((await cur.fetchone())[0])


async def estimated_total(pool: aiopg.Pool) -> tuple[int, bool]:
    """How many customers there are, and whether that is an exact count (else the planner's estimate)."""
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(SQL["estimated_total"], {"count_below_bytes": COUNT_BELOW_BYTES})
        total, exact = await cur.fetchone()
        return int(total), bool(exact)


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
        customer = await _one(pool, SQL["create"], params)
    except psycopg2.errors.UniqueViolation:  # customer_id, a text that is not null since it collided
        raise CustomerIdTaken(str(params["customer_id"])) from None
    assert customer is not None  # INSERT ... VALUES ... RETURNING returns its one row
    return customer


async def update(pool: aiopg.Pool, customer_id: int, changes: Mapping[str, object],
                 versions: list[int] | None = None, by: str | None = None) -> dict:
    """Change the fields in `changes` (by `by`); with `versions`, only if the customer is at one of them."""
    params = {name: changes.get(name) for name in EDITABLE}
    params.update(id=customer_id, present=[name for name in EDITABLE if name in changes], versions=versions,
                  by=by)
    try:
        customer = await _one(pool, SQL["update"], params)
    except psycopg2.errors.UniqueViolation:  # customer_id, a text that is not null since it collided
        raise CustomerIdTaken(str(changes["customer_id"])) from None
    if customer is None:
        raise CustomerChanged(await get(pool, customer_id))  # get raises when it is absent
    return customer


async def release(pool: aiopg.Pool, customer_id: int, versions: list[int] | None = None) -> dict:
    """Clear the hand-edit mark, so imports update the customer again."""
    customer = await _one(pool, SQL["release"], {"id": customer_id, "versions": versions})
    if customer is None:
        raise CustomerChanged(await get(pool, customer_id))
    return customer


async def delete(pool: aiopg.Pool, customer_id: int, versions: list[int] | None = None,
                 by: str | None = None) -> None:
    """Delete the customer (by `by`, as its history will say); with `versions`, only if it is at one."""
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(SQL["delete"], {"id": customer_id, "versions": versions, "by": by})
        if await cur.fetchone() is None:
            raise CustomerChanged(await get(pool, customer_id))


async def export_rows(pool: aiopg.Pool, q: str | None = None,
                      page_size: int = EXPORT_PAGE) -> AsyncIterator[tuple]:
    """Every customer (or every one matching q) in id order, a page at a time: constant memory.

    The connection goes back to the pool between pages, so a slow download
    never holds one. A search's page may stop early at its work budget: the
    export goes on from there until the last page. Rows come as the database
    gives them (dates as dates): the export formats them off the loop.
    """
    after: int | None = 0
    while after is not None:
        if q:
            rows, searched_to = await _search(pool, page_size + 1, after, q)
        else:
            rows, searched_to = await _page(pool, page_size + 1, after), None
        for row in rows[:page_size]:
            yield row
        after = rows[page_size - 1][0] if len(rows) > page_size else searched_to


@dataclass
class Warming:
    """How far the start-up read of search's relations has got (GET /metrics shows it)."""
    running: bool = True
    bytes_read: int = 0


async def warm(pool: aiopg.Pool, warming: Warming) -> int:
    """Read search's relations into memory (pg_prewarm), most used first; the bytes read.

    Right after PostgreSQL or the service starts, the first searches would
    read them from the disk or the OS cache a block at a time (seconds at
    10,000,000 customers). What fits in nine tenths of shared_buffers goes
    there, the rest into the OS cache only. Nothing without pg_prewarm.
    """
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(SQL["warm_plan"])
        plan = await cur.fetchall()
        room = plan[0][2] * 9 // 10 if plan else 0
        for name, size, _, available in plan:
            if not available:
                return 0
            await cur.execute(SQL["warm"], {"name": name, "mode": "buffer" if size <= room else "read"})
            room -= size if size <= room else 0
            warming.bytes_read += size
        return warming.bytes_read


async def _warm_once(pool: aiopg.Pool, warming: Warming) -> None:
    started = time.monotonic()
    try:
        done = await warm(pool, warming)
    except (psycopg2.Error, OSError, asyncio.TimeoutError):
        log.warning("could not read the search's relations into memory; searches warm as they go", exc_info=True)
        return
    finally:
        warming.running = False
    if done:
        log.info("search relations read into memory: %d MB in %.1f s", done // 2**20, time.monotonic() - started)


async def warming_ctx(app: web.Application) -> AsyncIterator[None]:
    """warm() in the background while the service starts answering: owned by the app, cancelled at cleanup."""
    warming = app[warming_key] = Warming()
    task = asyncio.create_task(_warm_once(app[pool_key], warming), name="search-warming")
    yield
    with contextlib.suppress(Exception):
        await cancel_and_wait(task)


async def _one(pool: aiopg.Pool, query: str, params: dict) -> dict | None:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(query, params)
        row = await cur.fetchone()
        return None if row is None else _customer(row)


def _customer(row: tuple) -> dict:
    return {name: _plain(value) for name, value in zip(FIELDS, row)}


def _plain(value: object) -> object:
    return value.isoformat() if isinstance(value, (date, datetime)) else value
