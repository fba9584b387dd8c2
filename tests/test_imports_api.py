"""/import over HTTP: starting by path, history, control, recent rows and the rejects file."""
import asyncio
import csv
import io
import os

import aiopg
import pytest

from server.generate import generate
from tests.importing import HEADER, TERMINAL, row, wait_for_status, write_csv
from tests.sse import open_stream


async def start(client, name: str, **options) -> dict:
    resp = await client.post("/import", json={"path": name, **options})
    assert resp.status == 202, await resp.text()
    return await resp.json()


async def paused_job(client, config) -> dict:
    """A job held paused: a file long enough that the pause lands before its end."""
    generate(config.import_dir / "long.csv", 6000, seed=3, about_bytes=600)
    job = await start(client, "long.csv")
    resp = await client.post(f"/import/jobs/{job['id']}/pause")
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_idle_before_any_job(client):
    resp = await client.get("/import")
    assert resp.status == 200
    assert await resp.json() == {"status": "idle"}


async def test_a_path_in_the_import_dir_is_imported(client, config, db):
    write_csv(config.import_dir / "a.csv", [HEADER, row(1, "P1"), row(2, "P2")])
    job = await start(client, "a.csv")
    assert job["status"] == "queued" and job["filename"] == "a.csv"
    done = await wait_for_status(client.app, job["id"], TERMINAL)
    assert (done["status"], done["inserted"]) == ("completed", 2)
    assert await (await client.get("/import")).json() == done
    assert await (await client.get(f"/import/jobs/{job['id']}")).json() == done
    assert await db.value("SELECT count(*) FROM customers") == 2


async def test_a_finished_job_stays_as_it_finished_after_its_process_lets_go(client, config, db):
    stream = await open_stream(client.session, client.make_url("/import/events"))
    await stream.next()
    write_csv(config.import_dir / "a.csv", [HEADER, row(1, "R1")])
    job = await start(client, "a.csv")
    finished = (await stream.until(lambda e: e.event == "state" and e.job["status"] in TERMINAL))[-1]
    stream.response.close()
    assert finished.job["status"] == "completed"
    assert finished.job["worker"] is None, "the event that says completed says nobody runs it"
    for _ in range(200):  # the runner holds the job's advisory lock until it has let go
        if not await db.value("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                              "AND classid = 7342 AND objid = %s AND database = "
                              "(SELECT oid FROM pg_database WHERE datname = current_database())",
                              (job["id"],)):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the job's process never let go")
    assert await (await client.get(f"/import/jobs/{job['id']}")).json() == finished.job


async def test_a_file_in_a_subfolder_is_found(client, config):
    (config.import_dir / "2024").mkdir()
    write_csv(config.import_dir / "2024" / "b.csv", [HEADER, row(1, "S1")])
    job = await start(client, "2024/b.csv")
    assert (await wait_for_status(client.app, job["id"], TERMINAL))["status"] == "completed"


@pytest.mark.parametrize(("path", "named"), [
    ("../outside.csv", ".."),
    ("a/../../outside.csv", ".."),
    ("/etc/passwd", "absolute"),
    ("%2e%2e/outside.csv", "percent-encoded"),
    ("..%2Foutside.csv", "percent-encoded"),
    ("a.csv\x00.txt", "NUL"),
    ("escape/outside.csv", "outside the import directory"),
])
async def test_paths_leaving_the_import_dir_are_refused(client, config, tmp_path, db, path, named):
    write_csv(tmp_path / "outside.csv", [HEADER, row(1, "X1")])
    os.symlink(tmp_path, config.import_dir / "escape")
    resp = await client.post("/import", json={"path": path})
    assert resp.status == 400
    assert named in (await resp.json())["error"]
    assert await db.value("SELECT count(*) FROM import_jobs") == 0


async def test_a_missing_file_is_404_and_a_folder_400(client, config):
    resp = await client.post("/import", json={"path": "nope.csv"})
    assert resp.status == 404
    assert "nope.csv" in (await resp.json())["error"]
    (config.import_dir / "dir.csv").mkdir()
    resp = await client.post("/import", json={"path": "dir.csv"})
    assert resp.status == 400


@pytest.mark.parametrize(("content", "status", "named"), [
    (b"Index,Name\n1,x\n", 422, "Customer Id"),
    (b"\x00\x01\x02binary\n", 415, "NUL"),
    (b"", 422, "empty"),
])
async def test_a_file_that_is_not_a_customer_csv_is_refused_up_front(client, config, content, status, named):
    (config.import_dir / "bad.csv").write_bytes(content)
    resp = await client.post("/import", json={"path": "bad.csv"})
    assert resp.status == status
    assert named in (await resp.json())["error"]


async def test_bad_bodies_name_the_problem(client):
    resp = await client.post("/import", json={"file": "a.csv"})
    assert resp.status == 422
    assert "path" in (await resp.json())["error"]
    resp = await client.post("/import", data=b"a.csv", headers={"Content-Type": "text/plain"})
    assert resp.status == 415
    assert "multipart" in (await resp.json())["error"]


async def test_one_job_at_a_time_409_names_the_active_job(client, config):
    paused = await paused_job(client, config)
    write_csv(config.import_dir / "a.csv", [HEADER, row(1, "A1")])
    resp = await client.post("/import", json={"path": "a.csv"})
    assert resp.status == 409
    body = await resp.json()
    assert body["job"]["id"] == paused["id"] and body["job"]["status"] == "paused"
    assert "one import at a time" in body["error"]


async def test_pause_resume_cancel_and_the_409s(client, config, db):
    job = await paused_job(client, config)
    url = f"/import/jobs/{job['id']}"
    assert job["status"] == "paused"
    assert (await client.post(f"{url}/pause")).status == 409
    resp = await client.post(f"{url}/resume")
    assert resp.status == 200 and (await resp.json())["status"] == "running"
    assert (await client.post(f"{url}/resume")).status == 409
    resp = await client.post(f"{url}/cancel")
    assert resp.status == 200
    cancelled = await resp.json()
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"] is not None
    for action in ("pause", "resume", "cancel"):
        resp = await client.post(f"{url}/{action}")
        assert resp.status == 409
        assert (await resp.json())["job"]["status"] == "cancelled"
    # What was committed stays, and a new job may start.
    assert await db.value("SELECT count(*) FROM customers") == (await (await client.get(url)).json())["inserted"]
    write_csv(config.import_dir / "next.csv", [HEADER, row(1, "N1")])
    await start(client, "next.csv")


async def test_unknown_and_non_numeric_ids(client):
    for path in ("/import/jobs/999", "/import/jobs/999/recent", "/import/jobs/999/rejects.csv"):
        resp = await client.get(path)
        assert resp.status == 404
        assert "999" in (await resp.json())["error"]
    assert (await client.post("/import/jobs/999/pause")).status == 404
    for path in ("/import/jobs/abc", "/import/jobs/1e3/recent", "/import/jobs/" + "9" * 30):
        resp = await client.get(path)
        assert resp.status == 404
        assert "error" in await resp.json()


async def test_history_is_newest_first_in_keyset_pages(client, config):
    ids = []
    for i in range(3):
        write_csv(config.import_dir / f"h{i}.csv", [HEADER, row(1, f"H{i}")])
        job = await start(client, f"h{i}.csv")
        await wait_for_status(client.app, job["id"], TERMINAL)
        ids.append(job["id"])
    page = await (await client.get("/import/jobs?limit=2")).json()
    assert [j["id"] for j in page["items"]] == ids[:0:-1] and page["next"] == ids[1]
    page = await (await client.get(f"/import/jobs?limit=2&before={page['next']}")).json()
    assert [j["id"] for j in page["items"]] == ids[:1] and page["next"] is None
    resp = await client.get("/import/jobs?limit=0")
    assert resp.status == 422
    assert (await resp.json())["fields"][0]["field"] == "limit"


async def test_recent_has_the_latest_rows(client, config):
    write_csv(config.import_dir / "r.csv", [HEADER] + [row(i, f"R{i}", f"Name{i}") for i in range(1, 31)])
    job = await start(client, "r.csv")
    await wait_for_status(client.app, job["id"], TERMINAL)
    items = (await (await client.get(f"/import/jobs/{job['id']}/recent")).json())["items"]
    assert len(items) == 20
    assert [i["customer_id"] for i in items] == [f"R{i}" for i in range(11, 31)]
    assert items[-1]["first_name"] == "Name30"


async def test_rejects_csv_has_line_offset_reason_and_raw_text_neutralised(client, config):
    formula = "=HYPERLINK(\"http://evil\"),,Ann,Lee,Acme,Oslo,Norway,1,,a@b.c,2021-01-01,w,x"
    path = config.import_dir / "rj.csv"
    path.write_bytes("\n".join([HEADER, row(1, "J1"), formula]).encode() + b"\n"
                     + b"4,J4,Ann\xff,Lee,Acme,Oslo,Norway,1,,a@b.c,2021-01-01,w,x\n")
    job = await start(client, "rj.csv", encoding="utf-8")  # auto would read \xff as Windows-1252
    await wait_for_status(client.app, job["id"], TERMINAL)
    resp = await client.get(f"/import/jobs/{job['id']}/rejects.csv")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(await resp.text())))
    data = path.read_bytes()
    assert rows[0] == ["line_no", "byte_offset", "reason", "raw"]
    assert [r[0] for r in rows[1:]] == ["3", "4"]
    assert data[int(rows[1][1]):].startswith(formula.encode())
    assert rows[1][2] == "Customer Id is empty"
    assert rows[1][3] == "'" + formula  # a spreadsheet shows it as text, never runs it
    assert rows[2][2] == "not valid UTF-8"
    assert rows[2][3] == "4,J4,Ann\\xff,Lee,Acme,Oslo,Norway,1,,a@b.c,2021-01-01,w,x"


async def test_a_name_too_long_for_the_file_system_is_400(client, config, db):
    (config.import_dir / "sub").mkdir()
    resp = await client.post("/import", json={"path": "a" * 300})
    assert resp.status == 400
    assert "too long" in (await resp.json())["error"]
    resp = await client.post("/import", json={"path": "sub/" + "b" * 300 + "/c.csv"})
    assert resp.status == 400
    assert await db.value("SELECT count(*) FROM import_jobs") == 0


async def test_a_symlink_loop_in_the_import_dir_is_400(client, config, db):
    os.symlink(config.import_dir / "loop_b", config.import_dir / "loop_a")
    os.symlink(config.import_dir / "loop_a", config.import_dir / "loop_b")
    for path in ("loop_a", "loop_a/x.csv"):
        resp = await client.post("/import", json={"path": path})
        assert resp.status == 400, await resp.text()
        assert "symlink" in (await resp.json())["error"]
    assert await db.value("SELECT count(*) FROM import_jobs") == 0


async def test_refused_imports_spend_no_job_id(client, config):
    paused = await paused_job(client, config)
    write_csv(config.import_dir / "a.csv", [HEADER, row(1, "A1")])
    for _ in range(5):
        assert (await client.post("/import", json={"path": "a.csv"})).status == 409
    assert (await client.post(f"/import/jobs/{paused['id']}/cancel")).status == 200
    job = await start(client, "a.csv")
    assert job["id"] == paused["id"] + 1


async def test_a_job_that_ends_while_another_is_being_started_is_never_a_500(client, config, db, db_url):
    """The one interleaving that made POST /import a 500, forced with the table's own locks:
    the new job's INSERT conflicts with the active job, which has ended by the time the
    server looks for it to answer 409."""
    write_csv(config.import_dir / "a.csv", [HEADER, row(1, "A1")])
    await _race_a_job_that_ends(db, db_url, lambda: client.post("/import", json={"path": "a.csv"}), "a.csv")


async def _wait_for_waiters(db, count: int) -> None:
    for _ in range(400):
        if await db.value("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                          "AND wait_event_type = 'Lock'") >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"fewer than {count} sessions wait for a lock")


async def test_rejects_csv_shows_invalid_utf8_and_nul_bytes_escaped(client, config):
    path = config.import_dir / "bytes.csv"
    path.write_bytes(HEADER.encode() + b"\n"
                     + b"1,B1,Ann\xff\xfe,Lee,Acme,Oslo,Norway,1,,a@b.c,2021-01-01,w,x\n"
                     + b"2,B2,Ann\x00Lee,Lee,Acme,Oslo,Norway,1,,a@b.c,2021-01-01,w,C:\\new\n")
    job = await start(client, "bytes.csv", encoding="utf-8")
    await wait_for_status(client.app, job["id"], TERMINAL)
    resp = await client.get(f"/import/jobs/{job['id']}/rejects.csv")
    body = await resp.read()
    assert b"\x00" not in body
    rows = list(csv.reader(io.StringIO(body.decode("utf-8"))))
    assert rows[1][3] == "1,B1,Ann\\xff\\xfe,Lee,Acme,Oslo,Norway,1,,a@b.c,2021-01-01,w,x"
    assert rows[2][3] == "2,B2,Ann\\x00Lee,Lee,Acme,Oslo,Norway,1,,a@b.c,2021-01-01,w,C:\\\\new"


async def test_reject_reasons_group_rows_that_failed_the_same_way_whatever_their_values(client, config):
    lines = [HEADER, row(1, "G1"), row(2, "G2", date="02/31/2023"), row(3, "G3", date="31.12.2023"),
             row(4, "", date="2021-01-01"), row(5, "G5", date="tomorrow"), "6,G6,too,few"]
    write_csv(config.import_dir / "reasons.csv", lines)
    job = await start(client, "reasons.csv")
    await wait_for_status(client.app, job["id"], TERMINAL)
    resp = await client.get(f"/import/jobs/{job['id']}/reject-reasons")
    assert resp.status == 200, await resp.text()
    items = (await resp.json())["items"]
    assert items[0] == {"reason": "Subscription Date … does not match the date layout YYYY-MM-DD",
                        "rows": 3, "first_line": 3}
    assert {(i["reason"], i["rows"]) for i in items[1:]} == {
        ("Customer Id is empty", 1), ("expected 13 fields, found 4", 1)}
    assert sum(i["rows"] for i in items) == 5

    one = await client.get(f"/import/jobs/{job['id']}/reject-reasons?limit=1")
    assert len((await one.json())["items"]) == 1
    assert (await client.get("/import/jobs/999/reject-reasons")).status == 404
    assert (await client.get(f"/import/jobs/{job['id']}/reject-reasons?limit=0")).status == 422


async def test_a_job_that_ends_while_an_upload_is_being_started_is_never_a_500(client, config, db, db_url):
    """The same interleaving through the upload-id door, which had no retry of its own (a 500)."""
    from tests.test_tus import create, patch

    data = ("\n".join([HEADER, row(1, "A1")]) + "\n").encode()
    url = await create(client, len(data))
    assert (await patch(client, url, 0, data)).status == 204
    await _race_a_job_that_ends(db, db_url, lambda: client.post(
        "/import", json={"upload": url.rsplit("/", 1)[1]}), "customers.csv")


async def _race_a_job_that_ends(db, db_url, post, filename: str) -> None:
    active = await db.value("INSERT INTO import_jobs (filename, path, status) "
                            "VALUES ('held.csv', '/nowhere/held.csv', 'paused') RETURNING id")
    async with aiopg.connect(db_url) as holder, aiopg.connect(db_url) as locker:
        hold, lock = await holder.cursor(), await locker.cursor()
        await hold.execute("BEGIN")
        await hold.execute("UPDATE import_jobs SET error = 'held' WHERE id = %s", (active,))
        request = asyncio.create_task(post())
        await _wait_for_waiters(db, 1)  # the new job's INSERT waits on the held row...
        await lock.execute("BEGIN")
        locking = asyncio.create_task(lock.execute("LOCK TABLE import_jobs IN ACCESS EXCLUSIVE MODE"))
        await _wait_for_waiters(db, 2)  # ...and the table lock queues behind it
        await hold.execute("ROLLBACK")  # the INSERT meets the active job: a unique violation
        await locking
        await lock.execute("UPDATE import_jobs SET status = 'cancelled', finished_at = now() WHERE id = %s",
                           (active,))
        await lock.execute("COMMIT")  # the job ended before the server could name it
        resp = await request
    assert resp.status in (202, 409), await resp.text()
    if resp.status == 202:
        assert (await resp.json())["filename"] == filename


async def test_the_upload_area_is_no_import_path_not_even_a_finished_file(client, config, db):
    from tests.test_tus import create, patch

    data = ("\n".join([HEADER] + [row(i, f"P{i}") for i in range(1, 200)]) + "\n").encode()
    url = await create(client, len(data))
    upload = url.rsplit("/", 1)[1]
    assert (await patch(client, url, 0, data[:5000])).status == 204  # unfinished: uploads/<id>.tus
    (config.import_dir / "inner").mkdir()
    (config.import_dir / "inner" / "link").symlink_to(config.import_dir / "uploads")
    for path in (f"uploads/{upload}.tus", f"./uploads/{upload}.tus", f"inner/link/{upload}.tus", "uploads",
                 f"inner/../uploads/{upload}.tus"):
        for route in ("/import", "/import/preview"):
            resp = await client.post(route, json={"path": path})
            assert resp.status == 400, (path, await resp.text())
            assert "upload" in (await resp.json())["error"], path
    assert await db.value("SELECT count(*) FROM import_jobs") == 0


@pytest.mark.parametrize(("fields", "named"), [
    ({"mapping": '{"Nope": "first_name"}'}, "Nope"),
    ({"mapping": "not json"}, "mapping"),
    ({"encoding": "utf-16"}, ""),
    ({"delimiter": "x"}, "delimiter"),
    ({"delimiter": ";"}, "Customer Id"),  # a delimiter the file does not use: no column is found
])
async def test_a_failed_multipart_preview_leaves_no_upload_and_no_file(client, config, db, fields, named):
    import aiohttp

    data = "\n".join([HEADER, row(1, "A1", "Zoë")]) + "\n"
    body = aiohttp.FormData()
    for name, value in fields.items():
        body.add_field(name, value)
    body.add_field("file", data.encode(), filename="c.csv", content_type="text/csv")
    resp = await client.post("/import/preview", data=body)
    assert resp.status in (400, 415, 422), await resp.text()
    assert named in await resp.text()
    assert await db.value("SELECT count(*) FROM uploads") == 0
    assert list((config.import_dir / "uploads").iterdir()) == []


async def test_the_preview_checks_what_each_columns_values_look_like(client, config):
    lines = ["Customer Id,EMAIL,Phone 1,Website,Subscription Date,First Name"]
    lines += [f"V{i},{i:03}.884.0519x718,+1-650-432-{i:04},http://www.site{i}.example/,2021-05-{i % 28 + 1:02},Ann"
              for i in range(30)]
    (config.import_dir / "v.csv").write_text("\n".join(lines) + "\n")
    resp = await client.post("/import/preview", json={"path": "v.csv"})
    assert resp.status == 200, await resp.text()
    checks = {c["name"]: c["check"] for c in (await resp.json())["columns"]}
    assert checks["EMAIL"]["kind"] == "email"
    assert (checks["EMAIL"]["sampled"], checks["EMAIL"]["matching"]) == (30, 0)
    assert "EMAIL" in checks["EMAIL"]["warning"] and "email addresses" in checks["EMAIL"]["warning"]
    assert checks["Phone 1"] == {"kind": "phone", "sampled": 30, "matching": 30, "warning": None}
    assert checks["Website"] == {"kind": "url", "sampled": 30, "matching": 30, "warning": None}
    assert checks["Subscription Date"] == {"kind": "date", "sampled": 30, "matching": 30, "warning": None}
    assert checks["First Name"] is None and checks["Customer Id"] is None
