"""GET /customers.csv: every customer, streamed, safe to open in a spreadsheet."""
import csv
import io

import pytest

from server.customers import EXPORT_PAGE

HEADER = ["id", "customer_id", "first_name", "last_name", "company", "city", "country", "phone_1",
          "phone_2", "email", "subscription_date", "website", "about", "created_at", "updated_at",
          "updated_manually_at", "updated_manually_by"]


async def download(client, **params) -> list[list[str]]:
    resp = await client.get("/customers.csv", params=params)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in resp.headers["Content-Disposition"]
    return list(csv.reader(io.StringIO((await resp.read()).decode("utf-8"), newline="")))


async def test_the_export_holds_every_customer_once_across_pages(client, db):
    count = 2 * EXPORT_PAGE + 17  # a partial page after two full ones
    await db.all("INSERT INTO customers (customer_id, first_name, subscription_date) "
                  "SELECT 'X' || n, 'Name ' || n, date '2020-01-01' + n FROM generate_series(1, %s) n", (count,))
    rows = await download(client)
    assert rows[0] == HEADER
    body = rows[1:]
    assert len(body) == count
    ids = [int(r[0]) for r in body]
    assert ids == sorted(set(ids))
    first = dict(zip(HEADER, body[0]))
    assert (first["customer_id"], first["first_name"], first["subscription_date"]) == ("X1", "Name 1", "2020-01-02")
    assert first["updated_manually_at"] == "" and "T" in first["created_at"]


async def test_an_empty_table_is_a_header(client):
    assert await download(client) == [HEADER]


async def test_formula_cells_are_neutralised_and_text_survives(client):
    resp = await client.post("/customers", json={
        "customer_id": "F1", "first_name": "=cmd|' /C calc'!A0", "company": "+1 Corp",
        "about": 'Line one\nline "two", with commas'})
    assert resp.status == 201
    [header, row] = await download(client)
    exported = dict(zip(header, row))
    assert exported["first_name"] == "'=cmd|' /C calc'!A0"
    assert exported["company"] == "'+1 Corp"
    assert exported["about"] == 'Line one\nline "two", with commas'


async def test_q_filters_the_export_like_the_list(client, db):
    await db.all("INSERT INTO customers (customer_id, first_name, company) "
                 "SELECT 'Q' || n, CASE WHEN mod(n, 3) = 0 THEN 'Ann' ELSE 'Bo' END, 'Co 100%' "
                 "FROM generate_series(1, 30) n")
    rows = await download(client, q="aNN")
    assert len(rows) == 1 + 10
    assert {r[2] for r in rows[1:]} == {"Ann"}
    assert len(await download(client, q="100%")) == 31
    assert len(await download(client, q="_")) == 1


async def test_a_q_export_holds_every_match_once_across_pages(client, db):
    count = 3 * (2 * EXPORT_PAGE + 1)  # every third matches: two full pages and one row more
    await db.all("INSERT INTO customers (customer_id, first_name) "
                 "SELECT 'M' || n, CASE WHEN mod(n, 3) = 0 THEN 'Ann' ELSE 'Bo' END "
                 "FROM generate_series(1, %s) n", (count,))
    expected = [str(row[0]) for row in await db.all("SELECT id FROM customers WHERE first_name = 'Ann' ORDER BY id")]
    rows = await download(client, q="ann")
    assert [r[0] for r in rows[1:]] == expected
    assert len(expected) == 2 * EXPORT_PAGE + 1


async def test_a_nul_in_the_export_search_is_422_before_any_csv_is_sent(client):
    resp = await client.get("/customers.csv?q=%00")
    assert resp.status == 422
    assert resp.headers["Content-Type"].startswith("application/json")
    assert (await resp.json())["fields"][0]["field"] == "q"



@pytest.mark.slow
async def test_one_download_too_many_is_429_with_retry_after(client_as, config, db):
    import dataclasses

    from server.app import create_app

    await db.all("INSERT INTO customers (customer_id, about) "
                 "SELECT 'D' || n, repeat('x', 1000) FROM generate_series(1, 20000) n")
    client = await client_as("admin", app=create_app(dataclasses.replace(config, exports_max_concurrent=1)))
    first = await client.get("/customers.csv")  # headers in, body left unread: it stays in progress
    assert first.status == 200
    second = await client.get("/customers.csv")
    assert second.status == 429
    assert int(second.headers["Retry-After"]) > 0
    assert "EXPORTS_MAX_CONCURRENT" in (await second.json())["error"]
    assert len((await first.read()).splitlines()) == 20001
    third = await client.get("/customers.csv")  # the slot is free again
    assert third.status == 200
    await third.read()
