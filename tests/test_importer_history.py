"""A re-import writes only what changed, and every change of a customer is in its history."""
import asyncio
import datetime

from server import history
from server.keys import pool_key

from tests.importing import HEADER, TERMINAL, import_file, import_while_held, row, wait_for_status, write_csv

XMINS = "SELECT customer_id, xmin::text FROM customers ORDER BY customer_id"
UPDATES = "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'customers'"


async def _table_updates(db) -> tuple:
    # A backend's counts reach the shared statistics when it ends (or now and then): the
    # job's connection is closed just after the job's last commit, so wait for that first.
    deadline = asyncio.get_running_loop().time() + 20
    while await db.value("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                         "AND application_name LIKE 'csv-import job %%'"):
        assert asyncio.get_running_loop().time() < deadline, "the job's connection stayed open"
        await asyncio.sleep(0.05)
    await db.all("SELECT pg_stat_force_next_flush()")
    await db.all("SELECT pg_stat_clear_snapshot()")
    return await db.one(UPDATES)


async def _history(client, customer_id: int, **query) -> dict:
    resp = await client.get(f"/customers/{customer_id}/history", params=query)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_a_re_import_of_the_same_file_writes_nothing_and_counts_unchanged(client, db, tmp_path):
    path = write_csv(tmp_path / "a.csv", [HEADER] + [row(i, f"U{i}", f"N{i}") for i in range(1, 301)])
    first = await import_file(client.app, path)
    assert (first["inserted"], first["unchanged"]) == (300, 0)
    xmins, before = await db.all(XMINS), await _table_updates(db)

    again = await import_file(client.app, path)
    assert again["status"] == "completed", again
    assert (again["inserted"], again["updated"], again["unchanged"], again["rows_done"]) == (0, 0, 300, 300)
    assert await db.all(XMINS) == xmins, "no row got a new version"
    assert await _table_updates(db) == before
    # Only the first import's inserts are in the history: nothing else happened.
    assert await db.value("SELECT count(*) FROM customer_history") == 300


async def test_a_re_import_with_one_changed_row_writes_that_row_only(client, db, tmp_path):
    lines = [HEADER] + [row(i, f"U{i}", f"N{i}") for i in range(1, 51)]
    await import_file(client.app, write_csv(tmp_path / "a.csv", lines))
    xmins, (updates, _) = dict(await db.all(XMINS)), await _table_updates(db)
    lines[7] = row(7, "U7", "Changed", about="Likes coffee")
    job = await import_file(client.app, write_csv(tmp_path / "b.csv", lines))
    assert (job["inserted"], job["updated"], job["unchanged"], job["rows_done"]) == (0, 1, 49, 50)
    assert (await _table_updates(db))[0] == updates + 1
    after = dict(await db.all(XMINS))
    assert [cid for cid in after if after[cid] != xmins[cid]] == ["U7"]

    customer_id = await db.value("SELECT id FROM customers WHERE customer_id = 'U7'")
    items = (await _history(client, customer_id))["items"]
    assert [(i["action"], i["job_id"], i["line_no"]) for i in items] == [
        ("update", job["id"], 8), ("insert", job["id"] - 1, 8)]
    assert items[0]["changes"] == {"first_name": ["N7", "Changed"], "email": ["n7@example.com",
                                                                             "changed@example.com"],
                                   "about": ["Likes tea", "Likes coffee"]}
    assert items[0]["by"] is None


async def test_a_re_import_puts_back_what_any_other_writer_changed(client, db, tmp_path):
    """An unchanged line is known by its digest (sql/023_*) only while no one else wrote the row:
    a hand edit (then released), an UPDATE from psql and an undo each make the next import compare."""
    lines = [HEADER] + [row(i, f"W{i}", f"N{i}") for i in range(1, 6)]
    first = await import_file(client.app, write_csv(tmp_path / "a.csv", lines))
    assert first["inserted"] == 5
    w1 = await db.value("SELECT id FROM customers WHERE customer_id = 'W1'")
    resp = await client.patch(f"/customers/{w1}", json={"city": "Bergen"})
    assert resp.status == 200, await resp.text()
    resp = await client.post(f"/customers/{w1}/release")
    assert resp.status == 200, await resp.text()
    await db.all("UPDATE customers SET company = 'Other Ltd' WHERE customer_id = 'W2'")
    lines[3] = row(3, "W3", "Changed")
    second = await import_file(client.app, write_csv(tmp_path / "b.csv", lines))
    assert (second["updated"], second["unchanged"]) == (3, 2), second
    assert await db.all("SELECT customer_id, city, company, first_name FROM customers "
                        "WHERE customer_id IN ('W1', 'W2', 'W3') ORDER BY 1") == [
        ("W1", "Oslo", "Acme", "N1"), ("W2", "Oslo", "Acme", "N2"), ("W3", "Oslo", "Acme", "Changed")]

    resp = await client.post(f"/import/jobs/{second['id']}/undo")
    assert resp.status == 202, await resp.text()
    undo = await wait_for_status(client.app, (await resp.json())["id"], TERMINAL)
    assert (undo["status"], undo["updated"]) == ("completed", 3), undo
    assert await db.value("SELECT first_name FROM customers WHERE customer_id = 'W3'") == "N3"
    third = await import_file(client.app, write_csv(tmp_path / "c.csv", lines))
    assert (third["updated"], third["unchanged"]) == (3, 2), third
    assert await db.value("SELECT first_name FROM customers WHERE customer_id = 'W3'") == "Changed"


async def test_a_file_without_a_column_leaves_no_digest_a_whole_line_could_match(client, db, tmp_path):
    """A line of a file without Email that is byte for byte a whole file's line with an empty
    Email still changes the row: the first left the stored email, the second clears it."""
    await import_file(client.app, write_csv(tmp_path / "a.csv", [HEADER, row(1, "E1", "Ann")]))
    narrow = "Customer Id,First Name,Last Name,Company,City,Country,Phone 1,Phone 2,Subscription Date,Website,About Customer"
    values = "E1,Bea,Lee,Acme,Oslo,Norway,+47 1234,,2021-05-06,https://example.com,Likes tea"
    job = await import_file(client.app, write_csv(tmp_path / "b.csv", [narrow, values]))
    assert job["updated"] == 1, job
    assert await db.one("SELECT first_name, email FROM customers") == ("Bea", "ann@example.com")
    whole = narrow.replace("Phone 2,", "Phone 2,Email,")
    job = await import_file(client.app, write_csv(tmp_path / "c.csv", [whole, values.replace("+47 1234,,", "+47 1234,,,")]))
    assert (job["updated"], job["unchanged"]) == (1, 0), job
    assert await db.one("SELECT first_name, email FROM customers") == ("Bea", None)


async def test_a_dry_run_counts_unchanged_rows_too(client, db, tmp_path):
    lines = [HEADER] + [row(i, f"D{i}") for i in range(1, 11)]
    await import_file(client.app, write_csv(tmp_path / "a.csv", lines))
    lines[3] = row(3, "D3", "Other")
    lines.append(row(11, "D11"))
    job = await import_file(client.app, write_csv(tmp_path / "b.csv", lines), options={"dry_run": True})
    assert (job["inserted"], job["updated"], job["unchanged"], job["rows_done"]) == (1, 1, 9, 11)
    assert await db.value("SELECT count(*) FROM customer_history") == 10, "a dry run records nothing"


async def test_edits_and_a_delete_through_the_api_are_in_the_history_after_the_customer_is_gone(client, db):
    resp = await client.post("/customers", json={"customer_id": "API1", "first_name": "Ann"})
    assert resp.status == 201, await resp.text()
    customer = await resp.json()
    resp = await client.patch(f"/customers/{customer['id']}", json={"first_name": "Bea", "city": "Bergen"})
    assert resp.status == 200, await resp.text()
    resp = await client.delete(f"/customers/{customer['id']}")
    assert resp.status == 204
    assert (await client.get(f"/customers/{customer['id']}")).status == 404

    page = await _history(client, customer["id"])
    who = client.principal_name
    assert [(i["action"], i["by"], i["job_id"]) for i in page["items"]] == [
        ("delete", who, None), ("update", who, None), ("insert", who, None)]
    assert page["items"][1]["changes"] == {"first_name": ["Ann", "Bea"], "city": [None, "Bergen"]}
    assert page["items"][0]["changes"]["first_name"] == ["Bea", None]
    assert page["items"][2]["changes"] == {"customer_id": [None, "API1"], "first_name": [None, "Ann"]}
    # Newest first, a page at a time.
    first = await _history(client, customer["id"], limit=2)
    rest = await _history(client, customer["id"], limit=2, after=first["next"])
    assert first["items"] + rest["items"] == page["items"] and rest["next"] is None


async def test_a_change_by_another_program_is_not_put_on_the_last_person_who_edited_by_hand(client, db):
    """The hand-edit mark names who edited last; a reporting tool's UPDATE after that is not theirs."""
    resp = await client.post("/customers", json={"customer_id": "P1", "first_name": "Ann"})
    customer = await resp.json()
    await db.all("UPDATE customers SET city = 'Bergen' WHERE id = %s", (customer["id"],))
    items = (await _history(client, customer["id"]))["items"]
    assert [(i["action"], i["by"]) for i in items] == [("update", None), ("insert", client.principal_name)]
    assert items[0]["changes"] == {"city": [None, "Bergen"]}
    resp = await client.patch(f"/customers/{customer['id']}", json={"city": "Oslo"})
    assert resp.status == 200
    assert (await _history(client, customer["id"]))["items"][0]["by"] == client.principal_name


async def test_a_viewer_reads_history_and_bad_queries_are_named(client_as):
    viewer = await client_as("viewer")
    assert (await viewer.get("/customers/1/history")).status == 200
    resp = await viewer.get("/customers/1/history?limit=0")
    assert resp.status == 422 and "limit" in (await resp.json())["error"]
    # A cursor past any history row's seq (a bigint) is named, not a 500 from the database.
    resp = await viewer.get("/customers/1/history?after=99999999999999999999")
    assert resp.status == 422 and "after" in (await resp.json())["error"]


async def test_history_older_than_the_kept_days_is_pruned_in_slices(client, db):
    await db.all("INSERT INTO customer_history (id, action, at) SELECT n, 'insert', now() - interval '91 days' "
                 "FROM generate_series(1, 25) n")
    await db.all("INSERT INTO customer_history (id, action, at) VALUES (1, 'update', now() - interval '89 days')")
    assert await history.prune(client.app[pool_key], 90, slice_rows=10) == 25
    assert await db.all("SELECT id, action FROM customer_history") == [(1, "update")]
    assert isinstance(await db.value("SELECT min(at) FROM customer_history"), datetime.datetime)


async def test_repeats_of_an_id_count_the_same_in_one_batch_as_in_batches_of_their_own(client, tmp_path):
    """An identical repeat changes nothing (unchanged), a changed one updates, whatever the batch size:
    the small file is one batch, the padded one (each row over IMPORT_BATCH_BYTES) a batch per row."""
    def lines(prefix: str, about: str) -> list[str]:
        return [HEADER, row(1, f"{prefix}1", "Ann", about=about), row(2, f"{prefix}1", "Ann", about=about),
                row(3, f"{prefix}2", "Bob", about=about), row(4, f"{prefix}2", "Bea", about=about),
                row(5, f"{prefix}2", "Bea", about=about), row(6, f"{prefix}3", "Cy", about=about)]
    wanted = {"inserted": 3, "updated": 1, "unchanged": 2, "skipped_manual": 0, "rejected": 0, "rows_done": 6}
    for prefix, about in (("S", "Likes tea"), ("P", "x" * 70_000)):
        for dry_run in (True, False):
            job = await import_file(client.app, write_csv(tmp_path / f"{prefix}{dry_run}.csv", lines(prefix, about)),
                                    options={"dry_run": dry_run})
            assert job["status"] == "completed", job
            assert {key: job[key] for key in wanted} == wanted, (prefix, dry_run, job)


async def test_a_row_another_writer_changed_while_the_import_waited_has_its_true_old_values_in_the_history(
        client, db, tmp_path):
    # An UPDATE from psql holds P1 until the import has read it (first name Old, city Oslo)
    # and waits to write it: the history's old values are those psql left, not those read.
    await import_file(client.app, write_csv(tmp_path / "a.csv", [HEADER, row(1, "P1", "Old")]))
    path = write_csv(tmp_path / "b.csv", [HEADER, row(1, "P1", "New")])
    job = await import_while_held(client.app, db, path, "UPDATE customers SET first_name = 'Psql', "
                                  "city = 'Bergen' WHERE customer_id = 'P1'", "P1, held by psql")
    assert (job["status"], job["updated"], job["unchanged"], job["skipped_manual"]) == ("completed", 1, 0, 0), job
    p1 = await db.value("SELECT id FROM customers WHERE customer_id = 'P1'")
    assert await db.one("SELECT first_name, city FROM customers WHERE id = %s", (p1,)) == ("New", "Oslo")
    items = [i for i in (await _history(client, p1))["items"] if i["job_id"] == job["id"]]
    assert [i["changes"] for i in items] == [{"first_name": ["Psql", "New"], "city": ["Bergen", "Oslo"],
                                              "email": ["old@example.com", "new@example.com"]}]
