"""The data rules of CONTRACT.md, through the real engine and a real database."""
import asyncio
import dataclasses

import pytest

from server.app import create_app
from server.importer import jobs
from server.keys import pool_key, runner_key

from tests.importing import (HEADER, TERMINAL, import_file, row, wait_for_status,
                             wait_for_the_import_to_wait_on_a_lock, write_csv)

CUSTOMER = "SELECT first_name, company, subscription_date::text, about FROM customers WHERE customer_id = %s"


async def test_new_rows_are_inserted_and_counted(client, db, tmp_path):
    path = write_csv(tmp_path / "a.csv", [HEADER, row(1, "A1"), row(2, "A2", "Bo")])
    job = await import_file(client.app, path)
    assert job["status"] == "completed", job
    assert (job["inserted"], job["updated"], job["skipped_manual"], job["rejected"]) == (2, 0, 0, 0)
    assert job["rows_done"] == 2 and job["percent"] == 100.0
    assert job["bytes_done"] == path.stat().st_size == job["bytes_total"]
    assert await db.one(CUSTOMER, ("A2",)) == ("Bo", "Acme", "2021-05-06", "Likes tea")


async def test_a_second_import_updates_and_hand_edits_are_left_alone(client, db, tmp_path):
    await import_file(client.app, write_csv(tmp_path / "a.csv", [HEADER, row(1, "A1"), row(2, "A2")]))
    await db.all("UPDATE customers SET first_name = 'Edited', updated_manually_at = now() WHERE customer_id = 'A2'")
    job = await import_file(client.app, write_csv(tmp_path / "b.csv", [
        HEADER, row(1, "A1", "Cy"), row(2, "A2", "Di"), row(3, "A3", "Ed")]))
    assert (job["inserted"], job["updated"], job["skipped_manual"]) == (1, 1, 1)
    assert await db.value("SELECT first_name FROM customers WHERE customer_id = 'A1'") == "Cy"
    assert await db.value("SELECT first_name FROM customers WHERE customer_id = 'A2'") == "Edited"


async def test_a_customer_created_by_hand_while_its_batch_is_written_is_left_alone(client, db, tmp_path):
    # H2 is created by hand (as POST /customers would) in a transaction that commits only
    # after the import looked H2 up, found nothing, and started copying it as new.
    path = write_csv(tmp_path / "a.csv", [HEADER, row(1, "H1"), row(2, "H2", "Imported"), row(3, "H3")])
    async with db.pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("BEGIN")
        await cur.execute("INSERT INTO customers (customer_id, first_name, updated_manually_at) "
                          "VALUES ('H2', 'ByHand', now())")
        job = await jobs.create(client.app[pool_key], filename=path.name, path=path,
                                bytes_total=path.stat().st_size)
        client.app[runner_key].wake()
        await wait_for_the_import_to_wait_on_a_lock(db, "the hand-made H2")
        await cur.execute("COMMIT")
    job = await wait_for_status(client.app, job["id"], TERMINAL)
    assert job["status"] == "completed", job
    assert (job["inserted"], job["updated"], job["skipped_manual"], job["rejected"]) == (2, 0, 1, 0)
    assert await db.value("SELECT first_name FROM customers WHERE customer_id = 'H2'") == "ByHand"
    assert await db.value("SELECT count(*) FROM customers") == 3


async def test_the_last_occurrence_of_an_id_wins_and_each_row_counts(client, db, tmp_path):
    path = write_csv(tmp_path / "dup.csv", [HEADER, row(1, "D1", "First"), row(2, "D2"), row(3, "D1", "Last")])
    job = await import_file(client.app, path)
    assert (job["inserted"], job["updated"], job["rows_done"]) == (2, 1, 3)
    assert await db.value("SELECT first_name FROM customers WHERE customer_id = 'D1'") == "Last"
    assert await db.value("SELECT count(*) FROM customers") == 2


async def test_duplicates_across_batches_count_the_same(client, db, tmp_path, config):
    # Enough rows that the 64 KiB test batches split the file many times.
    lines = [HEADER] + [row(i, f"C{i % 700}", f"N{i}") for i in range(3000)]
    job = await import_file(client.app, write_csv(tmp_path / "many.csv", lines))
    assert (job["inserted"], job["updated"], job["rejected"]) == (700, 2300, 0)
    assert await db.value("SELECT first_name FROM customers WHERE customer_id = 'C0'") == "N2800"


@pytest.mark.parametrize(("line", "reason"), [
    ("9,,Ann,Lee,Acme,Oslo,Norway,1,,a@b.c,2021-01-01,w,x", "Customer Id is empty"),
    ("9," + "X" * 65 + ",Ann,Lee,Acme,Oslo,Norway,1,,a@b.c,2021-01-01,w,x", "longer than 64"),
    ("9,B9,Ann,Lee,Acme,Oslo,Norway,1,,a@b.c,2021-02-30,w,x",
     "Subscription Date '2021-02-30' is not a date: February has no day 30"),
    ("9,B9,Ann,Lee,Acme,Oslo,Norway,1,,a@b.c,2021-13-01,w,x",
     "Subscription Date '2021-13-01' is not a date: there is no month 13"),
    ("9,B9,Ann,Lee,Acme,Oslo,Norway,1,,a@b.c,01/02/2021,w,x",
     "Subscription Date '01/02/2021' does not match the date layout YYYY-MM-DD"),
    ("9,B9," + "N" * 256 + ",Lee,Acme,Oslo,Norway,1,,a@b.c,2021-01-01,w,x", "First Name is longer than 255 characters"),
    ("9,B9,Ann,Lee,Acme,Oslo,Norway,1,,a@b.c,2021-01-01,w," + "A" * 1_000_001,
     "About Customer is longer than 1000000 characters"),
    ("9,B9,Ann,Lee,Acme,Oslo,Norway,1,,397.884.0519x718,2021-01-01,w,x",
     "Email '397.884.0519x718' is not an email address"),
    ("9,B9,Ann,Lee,Acme,Oslo,Norway,1,,ann lee@example.com,2021-01-01,w,x", "Email 'ann lee@example.com' is not"),
    ("9,B9,Ann,Lee,Acme", "expected 13 fields, found 5"),
    ("9,B9,Ann,Lee,Acme,Oslo,Norway,1,,a@b.c,2021-01-01,w,x,extra", "expected 13 fields, found 14"),
])
async def test_a_bad_row_is_rejected_with_its_reason_and_the_rest_imports(client, db, tmp_path, line, reason):
    path = write_csv(tmp_path / "bad.csv", [HEADER, row(1, "G1"), line, row(3, "G3")])
    job = await import_file(client.app, path)
    assert job["status"] == "completed"
    assert (job["inserted"], job["rejected"]) == (2, 1)
    line_no, offset, why, raw = await db.one(
        "SELECT line_no, byte_offset, reason, raw FROM import_rejects WHERE job_id = %s", (job["id"],))
    assert line_no == 3 and reason in why
    data = path.read_bytes()
    assert data[offset:offset + len(raw)] == bytes(raw) == line.encode() + b"\n"


@pytest.mark.parametrize(("field", "value"), [
    ("email", "397.884.0519x718"), ("email", "a@b"), ("email", "ann lee@example.com"),
    ("first_name", "N" * 256), ("company", "C" * 256), ("about", "A" * 1_000_001), ("customer_id", "X" * 65)])
async def test_what_the_api_refuses_the_import_rejects_and_both_name_the_field(client, db, tmp_path, field, value):
    """One check per field (server/fields.py): the import's reject and the API's 422 agree."""
    resp = await client.post("/customers", json={"customer_id": "K1", field: value})
    assert resp.status == 422, await resp.text()
    assert [f["field"] for f in (await resp.json())["fields"]] == [field]
    columns = ["Customer Id", "Email", "First Name", "Company", "About Customer"]
    names = {"customer_id": 0, "email": 1, "first_name": 2, "company": 3, "about": 4}
    cells = ["K1", "k@example.com", "Kim", "Acme", "x"]
    cells[names[field]] = value
    job = await import_file(client.app, write_csv(tmp_path / "k.csv", [",".join(columns), ",".join(cells)]))
    assert (job["inserted"], job["rejected"]) == (0, 1), job
    label = {"customer_id": "Customer Id", "email": "Email", "first_name": "First Name", "company": "Company",
             "about": "About Customer"}[field]
    assert (await db.value("SELECT reason FROM import_rejects")).startswith(label + " ")
    ok = await import_file(client.app, write_csv(tmp_path / "ok.csv", [",".join(columns), "K1,k@example.com,Kim,"
                                                                       + "C" * 255 + "," + "A" * 1_000_000]))
    assert (ok["inserted"], ok["rejected"]) == (1, 0), ok  # at the limits exactly: stored


async def test_invalid_utf8_and_nul_bytes_are_rejected(client, db, tmp_path):
    path = tmp_path / "bytes.csv"
    path.write_bytes("\n".join([HEADER, row(1, "U1")]).encode() + b"\n"
                     + b"2,U2,Ann\xff\xfe,Lee,Acme,Oslo,Norway,1,,a@b.c,2021-01-01,w,x\n"
                     + b"3,U3,Ann\x00,Lee,Acme,Oslo,Norway,1,,a@b.c,2021-01-01,w,x\n"
                     + row(4, "U4").encode() + b"\n")
    # Asked for: a sample that is not UTF-8 would be read as Windows-1252 (docs/files.md).
    job = await import_file(client.app, path, options={"encoding": "utf-8"})
    reasons = [r[0] for r in await db.all(
        "SELECT reason FROM import_rejects WHERE job_id = %s ORDER BY line_no", (job["id"],))]
    assert reasons == ["not valid UTF-8", "the row holds a NUL byte"]
    assert (job["inserted"], job["rejected"]) == (2, 2)


async def test_header_variants_bom_crlf_and_quoted_newlines(client, db, tmp_path):
    lines = [
        "customer_id,ABOUT CUSTOMER,first-name,Company,Favourite Colour",
        'Q1,"Line one\r\nline two, with ""quotes""",  Ann  ,"Rasmussen, Black and Ferrell",blue',
        "",
        "Q2,,Bo,,red",
    ]
    job = await import_file(client.app, write_csv(tmp_path / "v.csv", lines, newline="\r\n", bom=True))
    assert job["status"] == "completed", job
    assert (job["inserted"], job["rejected"], job["rows_done"]) == (2, 0, 2)
    assert job["unknown_columns"] == ["Favourite Colour"]
    assert await db.one("SELECT first_name, company, about, city FROM customers WHERE customer_id = 'Q1'") == (
        "Ann", "Rasmussen, Black and Ferrell", 'Line one\r\nline two, with "quotes"', None)
    assert await db.one("SELECT first_name, company, about FROM customers WHERE customer_id = 'Q2'") == (
        "Bo", None, None)


async def test_an_absent_column_leaves_existing_values_alone(client, db, tmp_path):
    await import_file(client.app, write_csv(tmp_path / "a.csv", [HEADER, row(1, "K1", company="Old Co")]))
    job = await import_file(client.app, write_csv(tmp_path / "b.csv", ["Customer Id,First Name", "K1,Newname"]))
    assert job["updated"] == 1
    assert await db.one("SELECT first_name, company FROM customers WHERE customer_id = 'K1'") == ("Newname", "Old Co")


async def test_a_file_without_customer_id_fails_before_writing_anything(client, db, tmp_path):
    job = await import_file(client.app, write_csv(tmp_path / "n.csv", ["Name,Email", "Ann,a@b.c"]))
    assert job["status"] == "failed"
    assert "Customer Id" in job["error"]
    assert await db.value("SELECT count(*) FROM customers") == 0
    assert job["rows_done"] == 0


async def test_too_many_rejects_fail_the_job_and_keep_what_was_committed(client_as, config, db, tmp_path):
    client = await client_as("admin", app=create_app(dataclasses.replace(config, reject_limit=5)))
    lines = [HEADER] + [row(i, f"R{i}") for i in range(2000)] + ["bad"] * 50
    job = await import_file(client.app, write_csv(tmp_path / "r.csv", lines))
    assert job["status"] == "failed"
    assert "limit of 5" in job["error"]
    assert await db.value("SELECT count(*) FROM customers") == job["inserted"] == 2000


async def test_recent_rows_are_the_last_imported_with_their_line_numbers(client, db, tmp_path):
    path = write_csv(tmp_path / "r.csv", [HEADER] + [row(i, f"L{i}", f"N{i}") for i in range(1, 31)])
    job = await import_file(client.app, path)
    recent = await db.value("SELECT recent FROM import_jobs WHERE id = %s", (job["id"],))
    assert len(recent) == 20
    assert [r["customer_id"] for r in recent] == [f"L{i}" for i in range(11, 31)]
    assert [r["line_no"] for r in recent] == list(range(12, 32))
    assert recent[-1]["first_name"] == "N30"


async def test_a_completed_import_leaves_fresh_planner_statistics(client, db, tmp_path):
    path = write_csv(tmp_path / "s.csv", [HEADER] + [row(i, f"P{i}") for i in range(500)])
    await import_file(client.app, path)
    for _ in range(100):  # the ANALYZE follows the final commit
        if await db.value("SELECT reltuples FROM pg_class WHERE relname = 'customers'") == 500:
            break
        await asyncio.sleep(0.05)
    assert await db.value("SELECT reltuples FROM pg_class WHERE relname = 'customers'") == 500
