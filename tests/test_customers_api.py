"""/customers: keyset pages, search, edits with ETags, and the hand-edit rule."""
import uuid
from datetime import datetime

import aiopg
import psycopg2.errors
import pytest

from server import customers, sqlfiles
from server.customers import (SEARCH_CANDIDATE_BUDGET, SEARCH_WALK_BUDGET, SearchWords, encode_cursor,
                              proposed_patterns)
from server.db import drop_database, migrate, recreate_database
from tests.importing import HEADER, import_file, row, write_csv

FIELDS = ["id", "customer_id", "first_name", "last_name", "company", "city", "country", "phone_1",
          "phone_2", "email", "subscription_date", "website", "about", "created_at", "updated_at",
          "updated_manually_at", "updated_manually_by"]


async def create(client, **fields) -> dict:
    resp = await client.post("/customers", json=fields)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def fill(db, count: int, *, first: str = "Name") -> None:
    """`count` customers straight into the table, as an import would leave them."""
    await db.all("INSERT INTO customers (customer_id, first_name) "
                 "SELECT 'G' || n, %s || n FROM generate_series(1, %s) AS n", (first, count))


async def all_pages(client, url: str, params: dict | None = None) -> list[dict]:
    items, cursor = [], None
    while True:
        resp = await client.get(url, params=(params or {}) | ({} if cursor is None else {"after": cursor}))
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        items += body["items"]
        cursor = body["next"]
        if cursor is None:
            return items


# Create, read, update, delete

async def test_create_answers_201_with_location_etag_and_the_contract_fields(client, db):
    resp = await client.post("/customers", json={
        "customer_id": "N1", "first_name": " Ann ", "email": "ann@example.com",
        "subscription_date": "2021-05-06", "about": "", "company": "Acme"})
    assert resp.status == 201
    customer = await resp.json()
    assert list(customer) == FIELDS
    assert resp.headers["Location"] == f"/customers/{customer['id']}"
    assert resp.headers["ETag"]
    assert customer["first_name"] == "Ann"  # trimmed, as imports trim
    assert customer["about"] is None        # empty is null, as in imports
    assert customer["subscription_date"] == "2021-05-06"
    assert customer["updated_manually_at"] is not None
    assert await db.one("SELECT customer_id, first_name, updated_manually_at IS NOT NULL FROM customers") == (
        "N1", "Ann", True)

    fetched = await client.get(resp.headers["Location"])
    assert fetched.status == 200
    assert await fetched.json() == customer
    assert fetched.headers["ETag"] == resp.headers["ETag"]


async def test_a_duplicate_customer_id_is_409(client):
    await create(client, customer_id="D1")
    resp = await client.post("/customers", json={"customer_id": "D1"})
    assert resp.status == 409
    assert "D1" in (await resp.json())["error"]
    other = await create(client, customer_id="D2")
    resp = await client.patch(f"/customers/{other['id']}", json={"customer_id": "D1"})
    assert resp.status == 409


@pytest.mark.parametrize("path", ["/customers/999", "/customers/abc", "/customers/1.5", "/customers/-1",
                                  "/customers/99999999999999999999999"])
async def test_an_absent_or_non_integer_id_is_404(client, path):
    for method in ("GET", "PATCH", "DELETE"):
        resp = await client.request(method, path, json={} if method == "PATCH" else None)
        assert resp.status == 404, (method, path)
        assert "error" in await resp.json()


async def test_patch_changes_only_the_given_fields_and_marks_the_edit(client, db):
    await fill(db, 1)
    before = (await (await client.get("/customers")).json())["items"][0]
    assert before["updated_manually_at"] is None
    before_tag = (await client.get(f"/customers/{before['id']}")).headers["ETag"]
    resp = await client.patch(f"/customers/{before['id']}", json={"city": "Bergen", "first_name": None})
    assert resp.status == 200
    after = await resp.json()
    assert after["city"] == "Bergen" and after["first_name"] is None
    assert after["customer_id"] == before["customer_id"]
    assert after["updated_manually_at"] is not None
    assert after["updated_at"] > before["updated_at"]
    assert resp.headers["ETag"] != before_tag
    assert await db.one("SELECT city, first_name FROM customers") == ("Bergen", None)


async def test_delete_answers_204_and_the_customer_is_gone(client, db):
    customer = await create(client, customer_id="X1")
    resp = await client.delete(f"/customers/{customer['id']}")
    assert resp.status == 204
    assert await db.value("SELECT count(*) FROM customers") == 0
    assert (await client.get(f"/customers/{customer['id']}")).status == 404
    assert (await client.delete(f"/customers/{customer['id']}")).status == 404


# Validation: every bad field is a 422 that names it

@pytest.mark.parametrize(("body", "field"), [
    ({"customer_id": "V1", "shoe_size": 42}, "shoe_size"),
    ({"customer_id": "V1", "id": 5}, "id"),
    ({"customer_id": "V1", "updated_manually_at": None}, "updated_manually_at"),
    ({"customer_id": 17}, "customer_id"),
    ({"customer_id": "V1", "first_name": 5}, "first_name"),
    ({"customer_id": "V1", "city": ["Oslo"]}, "city"),
    ({"customer_id": "V1", "email": "not-an-address"}, "email"),
    ({"customer_id": "V1", "email": "a@b"}, "email"),
    ({"customer_id": "V1", "subscription_date": "06/05/2021"}, "subscription_date"),
    ({"customer_id": "V1", "subscription_date": "2021-02-30"}, "subscription_date"),
    ({"customer_id": "V1", "subscription_date": "2021-05-06T00:00:00"}, "subscription_date"),
    ({"customer_id": "V1", "subscription_date": 1620259200}, "subscription_date"),
    ({"customer_id": "X" * 65}, "customer_id"),
    ({"customer_id": "   "}, "customer_id"),
    ({}, "customer_id"),
    ({"customer_id": "V1", "company": "C" * 256}, "company"),
    ({"customer_id": "V1", "about": "A" * 1_000_001}, "about"),
    ({"customer_id": "V1", "last_name": "Lee\x00"}, "last_name"),
])
async def test_a_bad_field_is_422_naming_it(client, db, body, field):
    resp = await client.post("/customers", json=body)
    assert resp.status == 422
    problem = await resp.json()
    assert [f["field"] for f in problem["fields"]] == [field]
    assert field in problem["error"]
    assert await db.value("SELECT count(*) FROM customers") == 0


@pytest.mark.parametrize(("body", "field"), [
    ({"customer_id": None}, "customer_id"),
    ({"website": 3}, "website"),
    ({"created_at": "2020-01-01T00:00:00Z"}, "created_at"),
    ({"subscription_date": "yesterday"}, "subscription_date"),
])
async def test_a_bad_patch_is_422_naming_the_field_and_changes_nothing(client, db, body, field):
    customer = await create(client, customer_id="P1", website="https://a.example")
    resp = await client.patch(f"/customers/{customer['id']}", json=body)
    assert resp.status == 422
    assert [f["field"] for f in (await resp.json())["fields"]] == [field]
    assert await db.one("SELECT customer_id, website FROM customers") == ("P1", "https://a.example")


async def test_a_body_that_is_not_json_is_422(client):
    resp = await client.post("/customers", data=b"customer_id=1", headers={"Content-Type": "application/json"})
    assert resp.status == 422
    assert (await resp.json())["fields"][0]["field"] == "body"


async def test_the_longest_allowed_values_are_kept(client):
    customer = await create(client, customer_id="X" * 64, company="C" * 255, about="A" * 100_000,
                            subscription_date=None)
    assert (len(customer["customer_id"]), len(customer["company"]), len(customer["about"])) == (64, 255, 100_000)


# Keyset pages

async def test_pages_walk_every_customer_once_in_id_order(client, db):
    await fill(db, 120)
    first = await (await client.get("/customers")).json()
    assert len(first["items"]) == 50 and first["next"]
    ids = [c["id"] for c in await all_pages(client, "/customers?limit=7")]
    assert ids == sorted(ids) and len(ids) == len(set(ids)) == 120
    last = await (await client.get("/customers", params={"limit": 500})).json()
    assert len(last["items"]) == 120 and last["next"] is None


async def test_a_full_last_page_says_there_is_no_next(client, db):
    await fill(db, 10)
    body = await (await client.get("/customers?limit=10")).json()
    assert len(body["items"]) == 10 and body["next"] is None


async def test_inserts_and_deletes_between_pages_neither_skip_nor_repeat(client, db):
    await fill(db, 30)
    seen = []
    page = await (await client.get("/customers?limit=10")).json()
    seen += page["items"]
    # Between pages: delete the last row seen and one not yet seen, add a row at the end.
    await client.delete(f"/customers/{seen[-1]['id']}")
    unseen = await db.value("SELECT id FROM customers ORDER BY id OFFSET 15 LIMIT 1")
    await client.delete(f"/customers/{unseen}")
    added = await create(client, customer_id="LATE")
    while page["next"]:
        page = await (await client.get("/customers", params={"limit": 10, "after": page["next"]})).json()
        seen += page["items"]
    ids = [c["id"] for c in seen]
    assert len(ids) == len(set(ids)) == 30 - 1 + 1  # the unseen deleted row is gone, the new one came
    assert unseen not in ids and added["id"] == ids[-1]
    assert ids == sorted(ids)


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "limit=ten", "after=not*base64",
                                   "after=" + encode_cursor(1)[:-1] + "!", "after=YWJj",  # 'abc'
                                   "q=" + "x" * 201])
async def test_bad_page_parameters_are_422_naming_them(client, query):
    resp = await client.get("/customers?" + query)
    assert resp.status == 422
    named = query.split("=")[0]
    assert [f["field"] for f in (await resp.json())["fields"]] == [named]


# Search

async def test_q_searches_names_email_and_company_case_insensitively(client):
    ann = await create(client, customer_id="S1", first_name="Annabel", last_name="Lee", email="al@poe.example",
                       company="Raven Works", city="Baltimore")
    bo = await create(client, customer_id="S2", first_name="Bo", last_name="McAnnally", email="bo@mail.example")
    await create(client, customer_id="S3", first_name="Cy", last_name="Young", company="Baltimore Ltd")

    async def found(q: str) -> list[str]:
        items = await all_pages(client, f"/customers?limit=1&q={q}")
        return [c["customer_id"] for c in items]

    assert await found("ANN") == ["S1", "S2"]
    assert await found("raven wo") == ["S1"]
    assert await found("POE.EX") == ["S1"]
    assert await found("baltimore") == ["S1", "S3"]  # S1's city, S3's company
    assert await found("nobody-at-all") == []
    assert ann["id"] < bo["id"]


async def test_q_takes_like_wildcards_literally(client):
    await create(client, customer_id="W1", company="100% Juice")
    await create(client, customer_id="W2", company="1000 Juices")
    await create(client, customer_id="W3", email="first_last@x.example")
    await create(client, customer_id="W4", email="firstxlast@x.example")
    await create(client, customer_id="W5", company="Back\\slash Ltd")

    async def found(q: str) -> list[str]:
        resp = await client.get("/customers", params={"q": q})
        return [c["customer_id"] for c in (await resp.json())["items"]]

    assert await found("100%") == ["W1"]
    assert await found("%") == ["W1"]
    assert await found("t_l") == ["W3"]
    assert await found("k\\s") == ["W5"]


@pytest.mark.slow
async def test_search_pages_agree_with_a_plain_scan(client, db):
    """Every page of every search, against LIKE over the whole table.

    The search walks the next rows in id order and turns to the trigram index
    for strings too rare to fill a page that way; these strings are common,
    rare, clustered at either end, and absent, so pages come from the walk,
    the index, and both.
    """
    await db.all("INSERT INTO customers (customer_id, first_name, last_name, email, company) "
                 "SELECT 'P' || n, "
                 "       CASE WHEN n % 3 = 0 THEN 'Anna' ELSE 'Bo' END, "
                 "       CASE WHEN n % 97 = 0 THEN 'Rarename' WHEN n % 7 = 0 THEN 'Seventh' END, "
                 "       'user' || n || '@mail.example', "
                 "       CASE WHEN n < 40 THEN 'Early Corp' WHEN n > 2960 THEN 'Late Corp' END "
                 "FROM generate_series(1, 3000) AS n")
    for q in ("anna", "seventh", "RARENAME", "early corp", "late corp", "user1234@", "@mail", "no-such-thing",
              # several words, each anywhere: common with rare, rare with absent, the same word twice
              "corp anna", "rarename anna", "seventh  rarename", "rarename no-such-thing", "anna anna"):
        expected = [row[0] for row in await db.all(
            "SELECT customer_id FROM customers "
            "WHERE customer_search_doc(first_name, last_name, email, company, city, country) LIKE ALL (%s) "
            "ORDER BY id", ([f"%{word}%" for word in q.lower().split()],))]
        for limit in (1, 7, 500):
            found = await all_pages(client, f"/customers?limit={limit}&q={q}")
            assert [c["customer_id"] for c in found] == expected, (q, limit)


# Every kind of query a person types, and what each finds (docs/search.md).
QUERY_KINDS = (
    "a", "7", "qz", "an",             # one and two characters: nothing for the trigram index
    "ann", "rarena", "user12",        # the start of a name, a rare name, the start of an email
    "P1234", "p12", "P 1",            # a Customer Id exact, its start in another case, and not one
    "corp anna", "anna corp",         # two words in any order
    "rarename", "zephyr",             # rare strings, one only in the last rows
    "no-such-thing", "zz", "q z",     # nothing matches
    "mail", "@mail.example",          # every row matches
)


async def fill_for_search(db, rows: int = 3000) -> None:
    await db.all("INSERT INTO customers (customer_id, first_name, last_name, email, company) "
                 "SELECT 'P' || n, "
                 "       CASE WHEN n %% 3 = 0 THEN 'Anna' ELSE 'Bo' END, "
                 "       CASE WHEN n %% 97 = 0 THEN 'Rarename' WHEN n %% 7 = 0 THEN 'Seventh' "
                 "            WHEN n %% 500 = 1 THEN 'Qzu' END, "
                 "       'user' || n || '@mail.example', "
                 "       CASE WHEN n < 40 THEN 'Early Corp' WHEN n > %s - 3 THEN 'Zephyr Corp' END "
                 "FROM generate_series(1, %s) AS n", (rows, rows))


async def plain_scan(db, q: str) -> list[str]:
    """What a search for `q` lists, by LIKE over every row: each word anywhere in the
    searched text, or `q` the start of the Customer Id, in any case."""
    return [row[0] for row in await db.all(
        "SELECT customer_id FROM customers "
        "WHERE customer_search_doc(first_name, last_name, email, company, city, country) LIKE ALL (%s) "
        "   OR starts_with(lower(customer_id), lower(%s)) "
        "ORDER BY id", ([f"%{word}%" for word in q.lower().split()], q.strip()))]


async def search_pages(client, q: str, limit: int) -> tuple[list[str], int]:
    """Every page of a search: the Customer Ids in order, and how many pages stopped
    early at the work budget (each says so, and its `next` goes on)."""
    ids, partial, cursor = [], 0, None
    while True:
        resp = await client.get("/customers", params={"q": q, "limit": limit} | ({} if cursor is None
                                                                                   else {"after": cursor}))
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        ids += [c["customer_id"] for c in body["items"]]
        assert len(body["items"]) == limit or body["partial"] or body["next"] is None, (q, body)
        partial += body["partial"]
        cursor = body["next"]
        if cursor is None:
            return ids, partial


@pytest.fixture
def small_budget(monkeypatch):
    """A work budget a 3,000-row table runs out of, as a 10,000,000-row one does."""
    monkeypatch.setattr(customers, "SEARCH_WALK_BUDGET", 400)
    monkeypatch.setattr(customers, "SEARCH_CANDIDATE_BUDGET", 60)


@pytest.mark.slow
async def test_every_kind_of_query_agrees_with_a_plain_scan_within_the_work_budget(client, db, small_budget):
    """Pages that stop at the budget say so (`partial`) and go on from there:
    all pages together are what a plain scan finds, for every kind of query."""
    await fill_for_search(db)
    await db.all("ANALYZE customers, customer_search")
    stopped = set()
    for q in QUERY_KINDS:
        expected = await plain_scan(db, q)
        for limit in (7, 500):
            found, partial = await search_pages(client, q, limit)
            assert found == expected, (q, limit)
            if partial:
                stopped.add(q)
    # Short strings the index cannot look up stop at the budget; a long rare one is looked up.
    assert {"qz", "zz", "q z"} <= stopped
    assert not {"rarename", "zephyr", "P1234"} & stopped, stopped


async def test_a_search_that_stops_at_its_budget_says_so_and_counts_what_it_saw(client, db, small_budget):
    await fill_for_search(db)
    first = await (await client.get("/customers", params={"q": "qz", "limit": 50, "total": "true"})).json()
    assert first["partial"] and first["next"] and first["matches_partial"]
    assert [c["customer_id"] for c in first["items"]] == ["P1"]  # the rows up to where it stopped
    assert (first["matches"], first["matches_capped"]) == (1, False)
    whole = await (await client.get("/customers", params={"q": "rarename", "total": "true"})).json()
    assert (whole["partial"], whole["matches_partial"], whole["matches"]) == (False, False, 30)
    # The export goes on past every early stop: all matches.
    resp = await client.get("/customers.csv", params={"q": "qz"})
    assert resp.status == 200
    exported = [line.split(",")[1] for line in (await resp.text()).splitlines()[1:]]
    assert exported == await plain_scan(db, "qz")


async def test_search_walks_where_the_index_would_propose_most_rows(client, db):
    """pg_trgm takes from 'a-b' only 'b' as a word start, found in every row
    here: the search walks the table. From 'x-q' it takes 'q', in few rows,
    and from 'quiet trad' two rare words: the index. 'zircon' is in 1 row of
    250: the first walk (1,275 rows) finds 6, and walking on would take
    14,000 rows where the index proposes 120: the index (006 walked on).
    Pages agree with a plain scan either way."""
    await db.all("INSERT INTO customers (customer_id, first_name, company) "
                 "SELECT 'T' || n, 'Tom', "
                 "       CASE WHEN n % 250 = 3 THEN 'Zircon Trading' "
                 "            WHEN n % 1000 = 17 THEN 'A-B Trading' WHEN n % 1000 = 517 THEN 'X-Q Trading' "
                 "            WHEN n % 5000 = 99 THEN 'Quiet Trading' ELSE 'A B Trading' END "
                 "FROM generate_series(1, 30000) AS n")
    await db.all("ANALYZE customers, customer_search")
    for q, matches, asks_index in (("a-b", 30, False), ("a-b t", 30, False), ("x-q", 30, True),
                                   ("quiet trad", 6, True), ("zircon", 120, True)):
        expected = [row[0] for row in await db.all(
            "SELECT customer_id FROM customers "
            "WHERE customer_search_doc(first_name, last_name, email, company, city, country) LIKE %s "
            "ORDER BY id", (f"%{q.lower()}%",))]
        found = await all_pages(client, f"/customers?limit=50&q={q}")
        assert [c["customer_id"] for c in found] == expected and len(expected) == matches, q
        assert (await trigram_index_scans(db, q) > 0) == asks_index, q


@pytest.mark.parametrize(("q", "proposed"), [
    ("z@walker", ["%wal%", "%alk%", "%lke%", "%ker%"]),  # 'z' is a word's end, one letter: no trigram
    ("3@ng", ["%ng%"]),            # 'ng' starts a word: '  n', ' ng'
    ("x-q", ["%q%"]),
    ("ng@x", ["%ng%", "%x%"]),     # a two-letter word's end: 'ng '
    ("ab", ["%"]),                 # nothing to look up: every row is a candidate
    ("rand", ["%ran%", "%and%"]),  # each trigram anywhere: 'France and Sons' too
    ("Lisa.Perez@b", ["%Lis%", "%isa%", "%Per%", "%ere%", "%rez%", "%b%"]),
])
def test_the_rows_the_index_proposes_are_estimated_trigram_by_trigram(q, proposed):
    assert proposed_patterns(q) == proposed


async def trigram_index_scans(db, q: str) -> int:
    """How often the first page of `q` (limit 50) asks the trigram index."""
    words = SearchWords.of(q)
    async with db.pool.acquire() as conn, conn.cursor() as cur:
        # The counter also holds this backend's scans not yet reported: the difference counts.
        await cur.execute("BEGIN")
        await cur.execute("SELECT pg_stat_get_xact_numscans('customer_search_trgm'::regclass)")
        before = (await cur.fetchone())[0]
        await cur.execute("SELECT count(*) FROM customer_search_bounded(0, lower(%s), %s, lower(%s), %s, 50, %s, %s)",
                          (words.pattern, [other.lower() for other in words.others], words.index_pattern,
                           [gram.lower() for gram in words.proposed], SEARCH_WALK_BUDGET, SEARCH_CANDIDATE_BUDGET))
        await cur.execute("SELECT pg_stat_get_xact_numscans('customer_search_trgm'::regclass)")
        scans = (await cur.fetchone())[0] - before
        await cur.execute("ROLLBACK")
    return scans


async def test_search_follows_every_write_to_customers(client, db, tmp_path):
    await import_file(client.app, write_csv(tmp_path / "a.csv", [HEADER, row(1, "F1", "Ada"), row(2, "F2", "Bea")]))
    created = await create(client, customer_id="F3", first_name="Cleo")
    bea = await db.value("SELECT id FROM customers WHERE customer_id = 'F2'")
    assert (await client.patch(f"/customers/{bea}", json={"first_name": "Beatrix"})).status == 200
    assert (await client.delete(f"/customers/{created['id']}")).status == 204
    await import_file(client.app, write_csv(tmp_path / "b.csv", [HEADER, row(1, "F1", "Adele")]))

    async def found(q: str) -> list[str]:
        resp = await client.get("/customers", params={"q": q})
        return [c["customer_id"] for c in (await resp.json())["items"]]

    assert (await found("adele"), await found("ada ")) == (["F1"], [])
    assert (await found("beatrix"), await found("cleo")) == (["F2"], [])
    assert await db.all("SELECT id, doc FROM customer_search ORDER BY id") == await db.all(
        "SELECT id, customer_search_doc(first_name, last_name, email, company, city, country) "
        "FROM customers ORDER BY id")

    with pytest.raises(psycopg2.errors.IntegrityConstraintViolation, match="id cannot change"):
        await db.all("UPDATE customers SET id = id + 1000 WHERE customer_id = 'F1'")

    await db.all("TRUNCATE customers")
    assert await db.value("SELECT count(*) FROM customer_search") == 0


@pytest.fixture
def unmigrated_db_url(server_url):
    name = f"csvimp_test_{uuid.uuid4().hex[:12]}"
    yield recreate_database(server_url, name)
    drop_database(server_url, name)


async def test_the_search_table_migration_takes_in_customers_already_there(unmigrated_db_url):
    before, since = sqlfiles.migrations()[:2], sqlfiles.migrations()[2:]
    async with aiopg.create_pool(unmigrated_db_url, minsize=1, maxsize=1) as pool:
        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("CREATE TABLE schema_migrations (version text PRIMARY KEY, "
                              "applied_at timestamptz NOT NULL DEFAULT now())")
            for version, sql in before:
                await cur.execute(sql)
                await cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            await cur.execute("INSERT INTO customers (customer_id, first_name, company) VALUES "
                              "('OLD1', 'Ada', 'Acme'), ('OLD2', 'Bea', 'Ada Labs'), ('OLD3', 'Cy', 'Initech')")

        assert await migrate(pool) == [version for version, _ in since]

        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT customer_id FROM customer_search_ids(0, '%ada%', '%ada%', '%ada%', 10) AS hit (id) "
                              "JOIN customers USING (id) ORDER BY id")
            assert [row[0] for row in await cur.fetchall()] == ["OLD1", "OLD2"]


async def test_search_has_one_trigram_index_and_customers_only_the_list_orders(db):
    """Each index is paid for again by every row an import copies in: customers has
    only the keys, the three the list's orders and filters need (sql/014_*) and the
    one a Customer Id search in any case needs (sql/018_*)."""
    indexes = {row[0] for row in await db.all(
        "SELECT indexname FROM pg_indexes WHERE tablename IN ('customers', 'customer_search')")}
    assert indexes == {"customers_pkey", "customers_customer_id_key", "customer_search_pkey", "customer_search_trgm",
                       "customers_updated_at_id", "customers_import_job_id_id", "customers_edited_by_hand",
                       "customers_customer_id_lower_id"}


# ETag and If-Match

async def test_if_match_makes_patch_and_delete_conditional(client, db):
    customer = await create(client, customer_id="E1", city="Oslo")
    url = f"/customers/{customer['id']}"
    first_tag = (await client.get(url)).headers["ETag"]

    resp = await client.patch(url, json={"city": "Bergen"}, headers={"If-Match": first_tag})
    assert resp.status == 200
    second_tag = resp.headers["ETag"]
    assert second_tag != first_tag
    assert (await client.get(url)).headers["ETag"] == second_tag

    stale = await client.patch(url, json={"city": "Tromsø"}, headers={"If-Match": first_tag})
    assert stale.status == 412
    body = await stale.json()
    assert body["customer"]["city"] == "Bergen" and body["etag"] == second_tag
    assert stale.headers["ETag"] == second_tag
    assert await db.value("SELECT city FROM customers") == "Bergen"

    assert (await client.delete(url, headers={"If-Match": first_tag})).status == 412
    assert (await client.delete(url, headers={"If-Match": '"someone-else"'})).status == 412
    assert await db.value("SELECT count(*) FROM customers") == 1
    assert (await client.delete(url, headers={"If-Match": f'"1-2", W/{second_tag}'})).status == 204
    assert (await client.delete(url, headers={"If-Match": second_tag})).status == 404


async def test_no_if_match_or_a_star_is_unconditional(client):
    customer = await create(client, customer_id="E2")
    url = f"/customers/{customer['id']}"
    assert (await client.patch(url, json={"city": "A"})).status == 200
    assert (await client.patch(url, json={"city": "B"}, headers={"If-Match": "*"})).status == 200
    assert (await (await client.get(url)).json())["city"] == "B"


async def test_an_etag_of_another_customer_does_not_match(client):
    one = await create(client, customer_id="E3")
    other = await create(client, customer_id="E4")
    tag = (await client.get(f"/customers/{one['id']}")).headers["ETag"]
    resp = await client.patch(f"/customers/{other['id']}", json={"city": "X"}, headers={"If-Match": tag})
    assert resp.status == 412


# The hand-edit rule, through a real import

async def test_an_edit_by_patch_survives_the_next_import(client, db, tmp_path):
    await import_file(client.app, write_csv(tmp_path / "a.csv", [HEADER, row(1, "H1"), row(2, "H2")]))
    edited_id = await db.value("SELECT id FROM customers WHERE customer_id = 'H2'")
    resp = await client.patch(f"/customers/{edited_id}", json={"first_name": "Edited", "company": "Mine"})
    assert resp.status == 200

    job = await import_file(client.app, write_csv(tmp_path / "b.csv", [
        HEADER, row(1, "H1", "Cy", company="New"), row(2, "H2", "Di", company="New")]))
    assert job["status"] == "completed", job
    assert (job["updated"], job["skipped_manual"]) == (1, 1)
    customer = await (await client.get(f"/customers/{edited_id}")).json()
    assert (customer["first_name"], customer["company"]) == ("Edited", "Mine")
    assert await db.value("SELECT first_name FROM customers WHERE customer_id = 'H1'") == "Cy"


async def test_a_long_query_matches_as_a_whole_not_by_its_indexed_start(client, db):
    await db.all("INSERT INTO customers (customer_id, email) VALUES "
                 "('L1', 'jurgenozturk@anderson.io'), ('L2', 'jurgenozturk@andersen.no')")
    resp = await client.get("/customers", params={"q": "JurgenOzturk@Anderson.io"})
    assert [c["customer_id"] for c in (await resp.json())["items"]] == ["L1"]


async def test_search_folds_case_beyond_ascii(client, db):
    await db.all("INSERT INTO customers (customer_id, last_name, city) VALUES "
                 "('N1', 'Nguyễn', 'Hà Nội'), ('N2', 'Øvergård', 'Tromsø'), ('N3', 'Nguyen', 'Hue')")
    for q, expected in (("NGUYỄN", ["N1"]), ("øVERGÅRD", ["N2"]), ("nguyen", ["N3"])):
        resp = await client.get("/customers", params={"q": q})
        assert [c["customer_id"] for c in (await resp.json())["items"]] == expected, q


# Input the API must refuse in words, never with a 500

async def test_a_nul_in_the_search_is_422_naming_q(client):
    resp = await client.get("/customers?q=%00")
    assert resp.status == 422
    assert (await resp.json())["fields"][0]["field"] == "q"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_a_body_that_is_not_declared_json_is_415_and_stores_nothing(client, db, content_type):
    headers = {} if content_type is None else {"Content-Type": content_type}
    resp = await client.post("/customers", data=b'{"customer_id": "CT1"}', headers=headers)
    assert resp.status == 415
    assert "application/json" in (await resp.json())["error"]
    created = await create(client, customer_id="CT2")
    resp = await client.patch(f"/customers/{created['id']}", data=b'{"first_name": "X"}',
                              headers={"Content-Type": "text/plain"})
    assert resp.status == 415
    assert await db.value("SELECT count(*) FROM customers") == 1
    assert await db.value("SELECT first_name FROM customers") is None


# The same cells through the importer and through the API: one trimming rule.
TRIMMED = [" \\x1fT1\\x1f ", "\\x1cT2", "\\u2028T3\\u2029", "\\x85T4\\xa0", "T5\\x1e"]


async def test_the_api_trims_a_customer_id_as_the_importer_does(client, app, config, db):
    ids = [bytes(value, "ascii").decode("unicode_escape") for value in TRIMMED]
    lines = [HEADER] + [row(i, '"' + value + '"') for i, value in enumerate(ids)]
    done = await import_file(app, write_csv(config.import_dir / "trim.csv", lines))
    assert done["inserted"] == len(ids)
    imported = [r[0] for r in await db.all("SELECT customer_id FROM customers ORDER BY id")]
    await db.all("DELETE FROM customers")
    for value in ids:
        await create(client, customer_id=value)
    by_api = [r[0] for r in await db.all("SELECT customer_id FROM customers ORDER BY id")]
    assert by_api == imported == ["T1", "T2", "T3", "T4", "T5"]
    resp = await client.post("/customers", json={"customer_id": "\x1f\x1c"})  # nothing left
    assert resp.status == 422
    assert (await resp.json())["fields"][0]["field"] == "customer_id"


# Orders, filters and the total (sql/014_*)

async def test_newest_first_pages_backwards_through_creation_order_without_repeats(client, db):
    await fill(db, 25)
    mine = await create(client, customer_id="MADE-BY-HAND")
    first = await (await client.get("/customers", params={"sort": "newest", "limit": 10})).json()
    assert first["items"][0]["customer_id"] == "MADE-BY-HAND"
    seen = await all_pages(client, "/customers?sort=newest&limit=7")
    ids = [c["id"] for c in seen]
    assert ids == sorted(ids, reverse=True) and len(ids) == len(set(ids)) == 26
    assert ids[0] == mine["id"]


async def test_recently_updated_first_follows_edits_and_keyset_pages(client, db):
    await fill(db, 12)
    # Every row updated at another moment; ties on updated_at are broken by id.
    await db.all("UPDATE customers SET updated_at = timestamptz '2024-01-01' + id * interval '1 second' "
                 "WHERE id % 2 = 0")
    target = (await (await client.get("/customers", params={"limit": 1})).json())["items"][0]
    resp = await client.patch(f"/customers/{target['id']}", json={"city": "Bergen"})
    assert resp.status == 200
    seen = await all_pages(client, "/customers?sort=updated&limit=5")
    assert seen[0]["id"] == target["id"]
    keys = [(c["updated_at"], c["id"]) for c in seen]
    assert len(seen) == 12 and len({c["id"] for c in seen}) == 12
    as_time = [(datetime.fromisoformat(at), i) for at, i in keys]
    assert as_time == sorted(as_time, reverse=True)


async def test_a_cursor_of_one_order_is_refused_in_another_and_search_takes_no_sort(client, db):
    await fill(db, 5)
    page = await (await client.get("/customers", params={"sort": "newest", "limit": 2})).json()
    resp = await client.get("/customers", params={"after": page["next"]})
    assert resp.status == 422 and "another order" in (await resp.json())["error"]
    resp = await client.get("/customers", params={"q": "Name", "sort": "updated"})
    assert resp.status == 422 and "id order" in (await resp.json())["error"]
    assert (await client.get("/customers", params={"sort": "oldest"})).status == 422


async def test_filters_from_one_import_and_edited_by_hand(client, config, db):
    write_csv(config.import_dir / "one.csv", [HEADER, row(1, "F1"), row(2, "F2")])
    first = await import_file(client.app, config.import_dir / "one.csv")
    # F2 changes (an unchanged row is not written at all, so stays the first import's).
    write_csv(config.import_dir / "two.csv", [HEADER, row(1, "F2", "Other"), row(2, "F3")])
    second = await import_file(client.app, config.import_dir / "two.csv")
    await create(client, customer_id="F-HAND")

    def ids(body):
        return [c["customer_id"] for c in body["items"]]
    # F2 was written last by the second import, so it counts as that import's.
    assert ids(await (await client.get("/customers", params={"job": first["id"]})).json()) == ["F1"]
    assert ids(await (await client.get("/customers", params={"job": second["id"]})).json()) == ["F2", "F3"]
    assert ids(await (await client.get("/customers", params={"edited": "true"})).json()) == ["F-HAND"]
    assert ids(await (await client.get("/customers", params={"edited": "true", "sort": "newest"})).json()) == ["F-HAND"]


async def test_the_total_is_exact_for_a_small_table_and_says_so(client, db):
    await fill(db, 40)
    body = await (await client.get("/customers", params={"limit": 1, "total": "true"})).json()
    assert body["total"] == 40 and body["total_is_estimate"] is False
    assert "total" not in await (await client.get("/customers", params={"limit": 1})).json()


async def test_the_total_of_a_large_table_is_the_planners_estimate(client, db):
    await db.all("INSERT INTO customers (customer_id, about) "
                 "SELECT 'T' || n, repeat('x', 300) FROM generate_series(1, 40000) AS n")
    await db.all("ANALYZE customers")
    body = await (await client.get("/customers", params={"limit": 1, "total": "true"})).json()
    assert body["total_is_estimate"] is True
    assert 36_000 <= body["total"] <= 44_000


async def test_search_finds_a_customer_by_its_customer_id_exact_or_by_its_start(client, db):
    await fill(db, 30)
    target = await create(client, customer_id="DD37Cf93aecA6Dc", first_name="Heather")
    await create(client, customer_id="DD37Cf00", first_name="Other")

    async def found(q):
        body = await (await client.get("/customers", params={"q": q})).json()
        return [c["customer_id"] for c in body["items"]]
    assert await found("DD37Cf93aecA6Dc") == ["DD37Cf93aecA6Dc"]
    assert await found("DD37Cf") == ["DD37Cf93aecA6Dc", "DD37Cf00"]
    assert await found("Heather") == ["DD37Cf93aecA6Dc"]  # names still found as before
    assert target["id"] < (await (await client.get("/customers", params={"q": "DD37Cf00"})).json())["items"][0]["id"]
    # Pages of an id search go on by the cursor like any search.
    for n in range(40):
        await db.all("INSERT INTO customers (customer_id) VALUES (%s)", (f"PX{n:03d}",))
    assert len(await all_pages(client, "/customers?q=PX&limit=7")) == 40


async def test_search_finds_by_city_country_and_words_in_any_order(client, db):
    await fill(db, 30)
    heather = await create(client, customer_id="CX-7781", first_name="Heather", last_name="Callahan",
                           city="Port Louis", country="Mauritius", email="hc@mail.example")
    await create(client, customer_id="CX-7790", first_name="Heather", last_name="Stone", city="Oslo",
                 country="Norway")
    await create(client, customer_id="CY-1000", first_name="Callum", last_name="Heath", city="Port Moresby",
                 country="Papua New Guinea")

    async def found(q):
        return [c["customer_id"] for c in await all_pages(client, "/customers", {"q": q, "limit": "1"})]

    assert await found("port louis") == ["CX-7781"]          # city
    assert await found("MAURITIUS") == ["CX-7781"]           # country
    assert await found("norway") == ["CX-7790"]
    assert await found("Callahan Heather") == ["CX-7781"]    # last name first
    assert await found("heather callahan") == ["CX-7781"]
    assert await found("heather  Oslo") == ["CX-7790"]       # a name and a city
    assert await found("heath") == ["CX-7781", "CX-7790", "CY-1000"]
    assert await found("heather port") == ["CX-7781"]        # every word must match: not CX-7790, not CY-1000
    assert await found("heather nowhere") == []
    assert await found("CX-7781") == ["CX-7781"]             # Customer Id, exact
    assert await found("CX-77") == ["CX-7781", "CX-7790"]    # and by its start
    assert heather["id"] < (await db.value("SELECT id FROM customers WHERE customer_id = 'CX-7790'"))


async def test_the_search_migration_rewrites_the_text_of_customers_already_there(unmigrated_db_url):
    """015 adds city and country to every customer's search text, and leaves the functions a
    process from before it calls working until that process is restarted."""
    versions = [version for version, _ in sqlfiles.migrations()]
    before = versions.index("015_search_city_country_and_words_in_any_order")
    async with aiopg.create_pool(unmigrated_db_url, minsize=1, maxsize=1) as pool:
        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("CREATE TABLE schema_migrations (version text PRIMARY KEY, "
                              "applied_at timestamptz NOT NULL DEFAULT now())")
            for version, sql in sqlfiles.migrations()[:before]:
                await cur.execute(sql)
                await cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            await cur.execute("INSERT INTO customers (customer_id, first_name, last_name, city, country) VALUES "
                              "('OLD1', 'Ada', 'Byron', 'London', 'United Kingdom'), "
                              "('OLD2', 'Bea', 'Lund', 'Oslo', 'Norway')")

        assert await migrate(pool) == versions[before:]

        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT id, doc FROM customer_search ORDER BY id")
            assert [doc for _, doc in await cur.fetchall()] == [
                "ada byron   london united kingdom", "bea lund   oslo norway"]
            await cur.execute("SELECT customer_id FROM customer_search_matching(0, '%norway%', '{}', '%norway%', "
                              "'%norway%', 10) AS hit (id) JOIN customers USING (id)")
            assert await cur.fetchall() == [("OLD2",)]
            await cur.execute("SELECT count(*) FROM pg_indexes WHERE indexname = 'customer_search_trgm'")
            assert await cur.fetchone() == (1,)
            # What a process from before 015 calls, still there for one release.
            await cur.execute("SELECT customer_search_doc('A', 'B', 'c@d', 'E')")
            assert await cur.fetchone() == ("a b c@d e",)
            await cur.execute("SELECT customer_id FROM customer_search_ids(0, '%lund%', '%lund%', '%lund%', 10) "
                              "AS hit (id) JOIN customers USING (id)")
            assert await cur.fetchall() == [("OLD2",)]


async def test_released_customers_are_updated_by_the_next_import_again(client, db, tmp_path):
    await import_file(client.app, write_csv(tmp_path / "a.csv", [HEADER, row(1, "RL1")]))
    customer_id = await db.value("SELECT id FROM customers WHERE customer_id = 'RL1'")
    edited = await client.patch(f"/customers/{customer_id}", json={"first_name": "Edited"})
    old_etag = edited.headers["ETag"]
    assert (await edited.json())["updated_manually_at"] is not None

    resp = await client.post(f"/customers/{customer_id}/release", headers={"If-Match": old_etag})
    assert resp.status == 200, await resp.text()
    released = await resp.json()
    assert released["updated_manually_at"] is None and released["updated_manually_by"] is None
    assert released["first_name"] == "Edited"  # the values stay until an import brings others
    assert resp.headers["ETag"] != old_etag
    # The old version is stale now: a second release with it is refused.
    again = await client.post(f"/customers/{customer_id}/release", headers={"If-Match": old_etag})
    assert again.status == 412

    job = await import_file(client.app, write_csv(tmp_path / "b.csv", [HEADER, row(1, "RL1", "Fresh")]))
    assert (job["updated"], job["skipped_manual"]) == (1, 0)
    assert await db.value("SELECT first_name FROM customers WHERE id = %s", (customer_id,)) == "Fresh"
    assert (await client.post("/customers/999999/release")).status == 404


# Search by Customer Id in any case, and counts of what a search or filter shows (issue 27)

async def test_a_customer_id_search_ignores_case(client):
    await create(client, customer_id="EB54EF11aa00b1c", first_name="Heather")
    await create(client, customer_id="eb54-other", first_name="Other")
    await create(client, customer_id="XEB54EF11", first_name="Inside")  # not a prefix: not found

    async def found(q: str) -> list[str]:
        return [c["customer_id"] for c in await all_pages(client, "/customers", {"q": q, "limit": "1"})]
    assert await found("eb54ef11") == ["EB54EF11aa00b1c"]
    assert await found("EB54EF11AA00B1C") == ["EB54EF11aa00b1c"]  # the whole id, in another case
    assert await found("EB54EF11aa00b1c") == ["EB54EF11aa00b1c"]  # exact, as before
    assert await found("EB54") == ["EB54EF11aa00b1c", "eb54-other"]


async def test_the_customer_id_search_is_a_range_of_an_index(db):
    """The prefix branch reads customers_customer_id_lower_id (sql/022_*), not every row."""
    await db.all("INSERT INTO customers (customer_id) SELECT 'K' || n FROM generate_series(1, 2000) AS n")
    await db.all("ANALYZE customers")
    async with db.pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("SET enable_seqscan = off")
        await cur.execute("EXPLAIN " + sqlfiles.queries("customers")["search_rows"], {
            "after": 0, "limit": 10, "ids": [], "upto": 2**63 - 1, "id_prefix": "k12"})
        plan = "\n".join(line for (line,) in await cur.fetchall())
        await cur.execute("RESET enable_seqscan")
    assert "customers_customer_id_lower_id" in plan, plan


async def test_a_search_or_a_filter_counts_its_matches(client, db):
    await fill(db, 30, first="Plain")
    await create(client, customer_id="M1", first_name="Heather", last_name="Callahan")
    await create(client, customer_id="M2", first_name="Heather", last_name="Smith")

    async def body(**params) -> dict:
        return await (await client.get("/customers", params={"limit": 1, "total": "true", **params})).json()
    searched = await body(q="heather")
    assert (searched["matches"], searched["matches_capped"]) == (2, False)
    assert searched["total"] == 32  # the table's total stays beside it
    edited = await body(edited="true")
    assert (edited["matches"], edited["matches_capped"]) == (2, False)
    assert "matches" not in await body()  # the whole list has its total only
    assert (await body(q="nobody"))["matches"] == 0


async def test_a_count_of_matches_stops_at_its_cap(client, db):
    await fill(db, 1005, first="Many")
    searched = await (await client.get("/customers", params={"limit": 1, "total": "true", "q": "many"})).json()
    assert (searched["matches"], searched["matches_capped"]) == (1000, True)
    near = await (await client.get("/customers", params={"limit": 1, "total": "true", "q": "Many1000"})).json()
    assert (near["matches"], near["matches_capped"]) == (1, False)
