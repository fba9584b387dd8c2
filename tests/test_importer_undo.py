"""POST /import/jobs/{id}/undo: an import taken back, as a job of its own."""
import asyncio
import csv
import dataclasses
import io

import aiopg

from server.app import create_app

from tests.importing import HEADER, TERMINAL, import_file, row, wait_for_status, write_csv

CUSTOMERS = "SELECT customer_id, first_name, about FROM customers ORDER BY customer_id"


async def _undo(client, job_id: int, **body) -> dict:
    resp = await client.post(f"/import/jobs/{job_id}/undo", json=body or None)
    assert resp.status == 202, await resp.text()
    job = await resp.json()
    assert (job["kind"], job["undoes"]) == ("undo", job_id)
    return await wait_for_status(client.app, job["id"], TERMINAL)


async def _rejects(client, job_id: int) -> list[list[str]]:
    resp = await client.get(f"/import/jobs/{job_id}/rejects.csv")
    assert resp.status == 200
    return list(csv.reader(io.StringIO(await resp.text())))[1:]


async def test_undo_of_an_import_of_new_customers_deletes_them(client, db, tmp_path):
    await import_file(client.app, write_csv(tmp_path / "keep.csv", [HEADER, row(1, "K1")]))
    job = await import_file(client.app, write_csv(tmp_path / "a.csv", [HEADER, row(1, "N1"), row(2, "N2")]))
    undo = await _undo(client, job["id"])
    assert undo["status"] == "completed", undo
    assert (undo["deleted"], undo["updated"], undo["rejected"], undo["rows_done"], undo["percent"]) == (
        2, 0, 0, 2, 100.0)
    assert await db.all(CUSTOMERS) == [("K1", "Ann", "Likes tea")]
    gone = await db.value("SELECT max(id) FROM customer_history WHERE job_id = %s", (job["id"],))
    items = (await (await client.get(f"/customers/{gone}/history")).json())["items"]
    assert [(i["action"], i["job_id"]) for i in items] == [("undo", undo["id"]), ("insert", job["id"])]
    assert items[0]["changes"]["customer_id"] == ["N2", None]


async def test_undo_of_updates_gives_back_the_values_from_before(client, db, tmp_path):
    await import_file(client.app, write_csv(tmp_path / "a.csv", [HEADER, row(1, "A1"), row(2, "A2")]))
    before = await db.all(CUSTOMERS)
    job = await import_file(client.app, write_csv(tmp_path / "b.csv", [
        HEADER, row(1, "A1", "Cy", about="Likes coffee"), row(2, "A2"), row(3, "A3"),
        row(4, "A1", "Di", about="Likes coffee")]))  # A1 twice: the first value from before counts
    assert (job["inserted"], job["updated"], job["unchanged"]) == (1, 2, 1)
    undo = await _undo(client, job["id"])
    assert (undo["deleted"], undo["updated"], undo["rejected"]) == (1, 1, 0)
    assert await db.all(CUSTOMERS) == before
    a1 = await db.value("SELECT id FROM customers WHERE customer_id = 'A1'")
    items = (await (await client.get(f"/customers/{a1}/history")).json())["items"]
    assert items[0]["action"] == "undo"
    assert items[0]["changes"]["first_name"] == ["Di", "Ann"]


async def test_a_customer_changed_after_the_import_is_left_alone_and_named(client, db, tmp_path):
    await import_file(client.app, write_csv(tmp_path / "a.csv", [HEADER, row(1, "A1"), row(2, "A2")]))
    job = await import_file(client.app, write_csv(tmp_path / "b.csv", [
        HEADER, row(1, "A1", "Cy"), row(2, "A2", "Di"), row(3, "A3")]))
    a2 = await db.value("SELECT id FROM customers WHERE customer_id = 'A2'")
    resp = await client.patch(f"/customers/{a2}", json={"last_name": "ByHand"})
    assert resp.status == 200

    dry = await _undo(client, job["id"], dry_run=True)
    assert (dry["status"], dry["deleted"], dry["updated"], dry["rejected"]) == ("completed", 1, 1, 1)
    assert await db.value("SELECT count(*) FROM customers") == 3, "a dry run changes nothing"

    undo = await _undo(client, job["id"])
    assert (undo["deleted"], undo["updated"], undo["rejected"]) == (1, 1, 1)
    assert await db.all("SELECT customer_id, first_name, last_name FROM customers ORDER BY customer_id") == [
        ("A1", "Ann", "Lee"), ("A2", "Di", "ByHand")]
    [(line, _, reason, raw)] = await _rejects(client, undo["id"])
    assert line == "3" and raw == "A2"
    # An undo read no file: its rejects are customers, not records to fix and import again.
    resp = await client.get(f"/import/jobs/{undo['id']}/rejects.csv?format=file")
    assert resp.status == 422 and "format=lines" in (await resp.json())["error"]
    assert "'A2'" in reason and client.principal_name in reason and "updated" in reason
    resp = await client.get(f"/import/jobs/{undo['id']}/reject-reasons")
    assert (await resp.json())["items"] == [{
        "reason": f"customer … was changed after import {job['id']}: updated by {client.principal_name} at …; "
                  "left as it is", "rows": 1, "first_line": 3}]


async def test_an_undo_that_cannot_run_answers_409_with_the_reason(client, db, tmp_path):
    job = await import_file(client.app, write_csv(tmp_path / "a.csv", [HEADER, row(1, "A1")]))
    dry = await import_file(client.app, write_csv(tmp_path / "b.csv", [HEADER, row(1, "B1")]),
                            options={"dry_run": True})
    undo = await _undo(client, job["id"])

    async def refused(job_id: int, words: str) -> None:
        resp = await client.post(f"/import/jobs/{job_id}/undo")
        assert resp.status == 409, await resp.text()
        assert words in (await resp.json())["error"]

    await refused(job["id"], f"undo job {undo['id']} has undone it already")
    await refused(dry["id"], "dry run")
    await refused(undo["id"], "it is an undo")
    other = await import_file(client.app, write_csv(tmp_path / "c.csv", [HEADER, row(1, "C1")]))
    await db.all("UPDATE import_jobs SET finished_at = now() - interval '91 days' WHERE id = %s", (other["id"],))
    await refused(other["id"], "HISTORY_DAYS")
    assert (await client.post("/import/jobs/999999/undo")).status == 404
    resp = await client.post(f"/import/jobs/{other['id']}/undo", json={"dry_run": "perhaps"})
    assert resp.status == 422 and "dry_run" in (await resp.json())["error"]


async def test_only_an_admin_may_undo(client_as, tmp_path):
    editor = await client_as("editor")
    assert (await editor.post("/import/jobs/1/undo")).status == 403


async def test_an_undo_pauses_resumes_and_counts_each_customer_once(client_as, config, db, tmp_path):
    client = await client_as("admin", app=create_app(dataclasses.replace(config, undo_slice_rows=2)))
    job = await import_file(client.app, write_csv(tmp_path / "a.csv", [HEADER] + [row(i, f"P{i}") for i in range(300)]))
    resp = await client.post(f"/import/jobs/{job['id']}/undo")
    undo = await resp.json()
    while (await db.value("SELECT bytes_done FROM import_jobs WHERE id = %s", (undo["id"],))) < 10:
        await asyncio.sleep(0.01)
    assert (await client.post(f"/import/jobs/{undo['id']}/pause")).status == 200
    paused = await wait_for_status(client.app, undo["id"], ("paused",))
    assert 0 < paused["deleted"] < 300
    assert await db.value("SELECT count(*) FROM customers") == 300 - paused["deleted"]
    resp = await client.post(f"/import/jobs/{job['id']}/undo")
    assert resp.status == 409 and (await resp.json())["job"]["id"] == undo["id"], "one job at a time"
    assert (await client.post(f"/import/jobs/{undo['id']}/resume")).status == 200
    done = await wait_for_status(client.app, undo["id"], TERMINAL)
    assert (done["status"], done["deleted"], done["rows_done"]) == ("completed", 300, 300)
    assert await db.value("SELECT count(*) FROM customers") == 0


async def test_a_hand_edit_mark_that_changed_no_value_still_keeps_the_customer(client, db, tmp_path):
    """A PATCH with the values the customer has writes no history, yet imports leave it alone
    from then on: so does the undo, and it says so."""
    job = await import_file(client.app, write_csv(tmp_path / "a.csv", [HEADER, row(1, "M1"), row(2, "M2")]))
    m1 = await db.value("SELECT id FROM customers WHERE customer_id = 'M1'")
    assert (await client.patch(f"/customers/{m1}", json={"first_name": "Ann"})).status == 200
    undo = await _undo(client, job["id"])
    assert (undo["deleted"], undo["rejected"]) == (1, 1)
    assert await db.all("SELECT customer_id FROM customers") == [("M1",)]
    [(line, _, reason, raw)] = await _rejects(client, undo["id"])
    assert (line, raw) == ("2", "M1") and client.principal_name in reason


async def test_a_hand_edit_committed_while_the_undo_waits_for_its_row_is_named_in_the_rejects(
        client, db, db_url, tmp_path):
    """Another process edits a customer by hand while the undo's slice runs: the undo leaves
    it as it is, and its rejects name it and who, as for an edit made before the undo."""
    job = await import_file(client.app, write_csv(tmp_path / "a.csv", [HEADER, row(1, "R1"), row(2, "R2")]))
    editor = await aiopg.connect(db_url)
    try:
        async with editor.cursor() as cur:
            await cur.execute("BEGIN")
            await cur.execute("UPDATE customers SET first_name = 'Hand', updated_manually_at = clock_timestamp(), "
                              "updated_manually_by = 'eve' WHERE customer_id = 'R1'")
            resp = await client.post(f"/import/jobs/{job['id']}/undo")
            assert resp.status == 202, await resp.text()
            undo = await resp.json()
            # The undo's slice waits for the edited row, then the edit commits.
            deadline = asyncio.get_running_loop().time() + 30
            while not await db.value("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                     "AND datname = current_database() AND application_name LIKE %s", (f"csv-import job {undo['id']} %",)):
                assert asyncio.get_running_loop().time() < deadline, "the undo never waited for the row"
                await asyncio.sleep(0.01)
            await cur.execute("COMMIT")
    finally:
        editor.close()
    done = await wait_for_status(client.app, undo["id"], TERMINAL)
    assert (done["status"], done["deleted"], done["rejected"]) == ("completed", 1, 1)
    assert await db.all("SELECT customer_id, first_name FROM customers") == [("R1", "Hand")]
    [(line, _, reason, raw)] = await _rejects(client, undo["id"])
    assert (line, raw) == ("2", "R1") and "eve" in reason


async def test_two_imports_are_taken_back_by_undoing_the_later_one_first(client, db, tmp_path):
    """docs/history.md: "To take back two imports, undo the later one first." The later
    import's change, taken back by its own undo, is no conflict for the earlier one's."""
    await import_file(client.app, write_csv(tmp_path / "a.csv", [HEADER, row(1, "T1"), row(2, "T2")]))
    before = await db.all(CUSTOMERS)
    first = await import_file(client.app, write_csv(tmp_path / "b.csv", [
        HEADER, row(1, "T1", "Cy"), row(2, "T2", "Cy"), row(3, "T3")]))
    second = await import_file(client.app, write_csv(tmp_path / "c.csv", [
        HEADER, row(1, "T1", "Di", about="Likes coffee"), row(3, "T3", "Di")]))
    later = await _undo(client, second["id"])
    assert (later["updated"], later["rejected"]) == (2, 0)
    # The hand-edit rule still holds: an edit after the later undo is a conflict.
    t2 = await db.value("SELECT id FROM customers WHERE customer_id = 'T2'")
    assert (await client.patch(f"/customers/{t2}", json={"last_name": "ByHand"})).status == 200

    earlier = await _undo(client, first["id"])
    assert (earlier["deleted"], earlier["updated"], earlier["rejected"]) == (1, 1, 1), earlier
    assert await db.all(CUSTOMERS) == [before[0], ("T2", "Cy", "Likes tea")]
    [(_, _, reason, raw)] = await _rejects(client, earlier["id"])
    assert raw == "T2" and client.principal_name in reason
