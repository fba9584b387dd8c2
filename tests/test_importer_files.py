"""Files as they come (docs/files.md): encodings, delimiters, date layouts and renamed columns,
imported over HTTP by path, checked in the customers table."""
from __future__ import annotations

import gzip
import time

import aiohttp
import pytest

from server.generate import generate
from tests.importing import LAST_JOB, TERMINAL, kill_past, wait_for_status
from tests.processes import cli, server_env

TABLE = ("SELECT customer_id, first_name, last_name, company, city, country, phone_1, phone_2, email, "
         "subscription_date, website, about FROM customers ORDER BY customer_id")
REJECTS = "SELECT line_no, byte_offset, reason, raw FROM import_rejects ORDER BY line_no"

NAMES = ("Müller", "Françoise", "Ångström")
COLUMNS = ["Index", "Customer Id", "First Name", "Last Name", "City", "Subscription Date"]


def table(delimiter: str, dates=("2021-05-06", "2020-08-26", "2019-12-31"), columns=COLUMNS) -> str:
    lines = [delimiter.join(columns)]
    for i, (name, day) in enumerate(zip(NAMES, dates), 1):
        lines.append(delimiter.join([str(i), f"F{i}", name, "Lee", "São Paulo", day]))
    return "\r\n".join(lines) + "\r\n"


async def start(client, name: str, status: int = 202, **options) -> dict:
    resp = await client.post("/import", json={"path": name, **options})
    assert resp.status == status, await resp.text()
    return await resp.json()


async def imported(client, name: str, **options) -> dict:
    job = await start(client, name, **options)
    return await wait_for_status(client.app, job["id"], TERMINAL)


async def stored(db) -> list[tuple]:
    return await db.all("SELECT customer_id, first_name, city, subscription_date::text FROM customers "
                        "ORDER BY customer_id")


EXPECTED = [("F1", "Müller", "São Paulo", "2021-05-06"), ("F2", "Françoise", "São Paulo", "2020-08-26"),
            ("F3", "Ångström", "São Paulo", "2019-12-31")]


async def test_a_windows_1252_file_with_accented_names(client, config, db):
    (config.import_dir / "w.csv").write_bytes(table(";").encode("cp1252"))
    job = await imported(client, "w.csv")
    assert job["status"] == "completed", job
    assert (job["inserted"], job["rejected"]) == (3, 0)
    assert job["options"]["encoding"] == "windows-1252"
    assert job["options"]["delimiter"] == ";"
    assert await stored(db) == EXPECTED


@pytest.mark.parametrize("sep_line", [True, False])
async def test_a_semicolon_file_with_and_without_excels_sep_line(client, config, db, sep_line):
    text = ("sep=;\r\n" if sep_line else "") + table(";")
    (config.import_dir / "s.csv").write_bytes(text.encode("utf-8"))
    job = await imported(client, "s.csv")
    assert (job["status"], job["inserted"], job["rejected"]) == ("completed", 3, 0)
    assert job["options"]["delimiter"] == ";" and job["options"]["encoding"] == "utf-8"
    assert await stored(db) == EXPECTED


async def test_a_utf16_le_tab_separated_file_with_bom(client, config, db):
    (config.import_dir / "u.txt").write_bytes(b"\xff\xfe" + table("\t").encode("utf-16-le"))
    job = await imported(client, "u.txt")
    assert (job["status"], job["inserted"], job["rejected"]) == ("completed", 3, 0), job
    assert job["options"]["encoding"] == "utf-16" and job["options"]["delimiter"] == "\t"
    assert job["bytes_done"] == job["bytes_total"] == (config.import_dir / "u.txt").stat().st_size
    assert await stored(db) == EXPECTED


async def test_a_dd_mm_yyyy_file_is_read_in_its_layout(client, config, db):
    (config.import_dir / "d.csv").write_text(table(",", ("06-05-2021", "26-08-2020", "31-12-2019")))
    job = await imported(client, "d.csv")
    assert (job["status"], job["inserted"], job["rejected"]) == ("completed", 3, 0), job
    assert job["options"]["date_format"] == "DD-MM-YYYY"
    assert await stored(db) == EXPECTED


async def test_an_ambiguous_date_layout_is_refused_until_one_is_chosen(client, config, db):
    (config.import_dir / "a.csv").write_text(table(",", ("03/04/2021", "05/06/2020", "01/02/2019")))
    refused = await start(client, "a.csv", status=422)
    assert refused["date_formats"] == ["DD/MM/YYYY", "MM/DD/YYYY"]
    assert "DD/MM/YYYY" in refused["error"] and "MM/DD/YYYY" in refused["error"]
    assert await db.value("SELECT count(*) FROM import_jobs") == 0  # nothing started
    job = await imported(client, "a.csv", date_format="MM/DD/YYYY")
    assert (job["status"], job["inserted"], job["rejected"]) == ("completed", 3, 0), job
    assert [r[3] for r in await stored(db)] == ["2021-03-04", "2020-05-06", "2019-01-02"]


async def test_a_date_no_layout_reads_is_refused(client, config, db):
    (config.import_dir / "n.csv").write_text(table(",", ("soon", "later", "never")))
    refused = await start(client, "n.csv", status=422)
    assert refused["date_formats"] == [] and "date_format" in refused["error"]


async def test_a_misspelled_column_is_imported_through_a_mapping(client, config, db):
    columns = ["INDEX", "CUSTOMERID", "FIRSNAME", "LASTNAME", "CITY", "SUBSCRIPTIONDATE"]
    (config.import_dir / "m.csv").write_text(table(",", columns=columns))
    unmapped = await imported(client, "m.csv")
    assert unmapped["unknown_columns"] == ["FIRSNAME"]
    assert await db.value("SELECT count(first_name) FROM customers") == 0
    job = await imported(client, "m.csv", mapping={"FIRSNAME": "first_name", "CITY": None})
    assert (job["status"], job["updated"]) == ("completed", 3), job
    assert job["options"]["mapping"] == {"FIRSNAME": "first_name", "CITY": None}
    rows = await db.all("SELECT first_name, city FROM customers ORDER BY customer_id")
    assert rows == [("Müller", "São Paulo"), ("Françoise", "São Paulo"), ("Ångström", "São Paulo")]


async def test_a_mapping_to_no_field_or_of_no_column_is_422(client, config):
    (config.import_dir / "m.csv").write_text(table(","))
    bad_field = await start(client, "m.csv", status=422, mapping={"City": "town"})
    assert "mapping" in str(bad_field)
    no_column = await start(client, "m.csv", status=422, mapping={"Town": "city"})
    assert "Town" in no_column["error"]


async def test_an_explicit_encoding_and_delimiter_win_over_detection(client, config, db):
    # Latin-1 bytes, commas inside the values: read as asked, a ';' file in Latin-1.
    (config.import_dir / "l.csv").write_bytes(table(";").encode("latin-1"))
    job = await imported(client, "l.csv", encoding="latin-1", delimiter=";")
    assert job["options"] == {"encoding": "latin-1", "delimiter": ";", "date_format": "YYYY-MM-DD",
                              "mapping": {}, "dry_run": False}
    assert await stored(db) == EXPECTED


async def test_the_preview_shows_settings_columns_and_rows_and_keeps_the_upload(client, config, db):
    columns = ["Index", "Customer Id", "FIRSNAME", "Last Name", "City", "Subscription Date"]
    text = table(";", ("06-05-2021", "26-08-2020", "31-12-2019"), columns=columns) + "4;;Bo;Lee;Rome;01-01-2020\r\n"
    form = aiohttp.FormData()
    form.add_field("mapping", '{"City": null}')
    form.add_field("file", text.encode("cp1252"), filename="excel.csv")
    resp = await client.post("/import/preview", data=form)
    assert resp.status == 200, await resp.text()
    preview = await resp.json()
    assert (preview["encoding"], preview["delimiter"], preview["date_format"]) == ("windows-1252", ";", "DD-MM-YYYY")
    assert preview["date_formats"] == ["DD-MM-YYYY"]
    by_name = {c["name"]: c for c in preview["columns"]}
    assert by_name["Customer Id"]["field"] == "customer_id"
    assert by_name["FIRSNAME"]["field"] is None
    assert by_name["FIRSNAME"]["suggestions"][0] == "first_name"
    assert by_name["City"]["field"] is None  # ignored by the mapping
    assert [r["line_no"] for r in preview["rows"]] == [2, 3, 4, 5]
    first = preview["rows"][0]
    assert (first["customer_id"], first["last_name"], first["subscription_date"], first["reject"]) == \
        ("F1", "Lee", "2021-05-06", None)
    assert preview["rows"][3]["reject"] == "Customer Id is empty"
    assert preview["estimated_rows"] == 4
    assert await db.value("SELECT count(*) FROM customers") == 0  # a preview changes nothing
    # The same file, imported by its upload id with the mapping the person chose.
    resp = await client.post("/import", json={"upload": preview["upload"], "mapping": {"FIRSNAME": "first_name"}})
    assert resp.status == 202, await resp.text()
    job = await wait_for_status(client.app, (await resp.json())["id"], TERMINAL)
    assert (job["status"], job["inserted"], job["rejected"]) == ("completed", 3, 1), job
    assert job["options"]["encoding"] == "windows-1252"
    assert await stored(db) == EXPECTED


async def test_a_preview_of_an_ambiguous_file_names_the_layouts(client, config):
    (config.import_dir / "a.csv").write_text(table(",", ("03/04/2021", "05/06/2020", "01/02/2019")))
    resp = await client.post("/import/preview", json={"path": "a.csv"})
    preview = await resp.json()
    assert resp.status == 200, preview
    assert preview["date_format"] == "auto"
    assert preview["date_formats"] == ["DD/MM/YYYY", "MM/DD/YYYY"]
    assert preview["upload"] is None


async def test_a_dry_run_counts_and_rejects_but_changes_no_customer(client, config, db):
    text = table(",") + "4,,Bo,Lee,Rome,2020-01-01\r\n5,F5,Cy,Lee,Rome,not a date\r\n"
    (config.import_dir / "r.csv").write_text(text)
    await db.all("INSERT INTO customers (customer_id, first_name) VALUES ('F1', 'Old')")
    job = await imported(client, "r.csv", dry_run=True)
    assert job["status"] == "completed", job
    assert (job["inserted"], job["updated"], job["rejected"]) == (2, 1, 2)
    assert job["options"]["dry_run"] is True
    assert await db.all("SELECT customer_id, first_name FROM customers") == [("F1", "Old")]
    resp = await client.get(f"/import/jobs/{job['id']}/rejects.csv")
    assert [line.split(",")[0] for line in (await resp.text()).splitlines()[1:]] == ["5", "6"]


async def test_rejected_rows_come_back_as_the_file_they_were(client, config, db):
    text = "sep=;\r\n" + table(";") + "4;;Bo;Lee;Zürich;2020-01-01\r\n5;F5;Cy;Lee;Rome;31-31-2020\r\n"
    (config.import_dir / "f.csv").write_bytes(text.encode("cp1252"))
    job = await imported(client, "f.csv")
    assert (job["inserted"], job["rejected"]) == (3, 2), job
    resp = await client.get(f"/import/jobs/{job['id']}/rejects.csv?format=file")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/csv")
    body = (await resp.read()).decode("utf-8")
    assert body == ("Index;Customer Id;First Name;Last Name;City;Subscription Date\r\n"
                    "4;;Bo;Lee;Zürich;2020-01-01\r\n5;F5;Cy;Lee;Rome;31-31-2020\r\n")
    bad = await client.get(f"/import/jobs/{job['id']}/rejects.csv?format=xml")
    assert bad.status == 422


async def test_a_gzip_file_is_read_as_a_stream_with_the_compressed_files_bytes(client, config, db):
    data = b"\xff\xfe" + table("\t").encode("utf-16-le")
    (config.import_dir / "u.txt.gz").write_bytes(gzip.compress(data))
    job = await imported(client, "u.txt.gz")
    assert (job["status"], job["inserted"], job["rejected"]) == ("completed", 3, 0), job
    assert job["bytes_done"] == job["bytes_total"] == (config.import_dir / "u.txt.gz").stat().st_size
    assert job["options"]["encoding"] == "utf-16"
    assert await stored(db) == EXPECTED


@pytest.mark.slow
async def test_a_gzip_import_killed_mid_way_resumes_to_the_clean_result(db, db_url, tmp_path):
    plain = tmp_path / "big.csv"
    generate(plain, 20_000, seed=11, about_bytes=300)
    with open(plain, "ab") as f:
        f.write(b"1,,no id,x,x,x,x,x,x,x,2020-01-01,x,x\n" * 3)
    packed = tmp_path / "big.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes(), compresslevel=1))
    env = server_env(DATABASE_URL=db_url, IMPORT_BATCH_BYTES=str(64 * 1024))

    def run_to_end(path) -> None:
        proc = cli("import", str(path), "--no-progress", env=env)
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err

    run_to_end(plain)
    clean = await db.all(TABLE)
    clean_rejects = await db.all(REJECTS)
    assert len(clean_rejects) == 3
    clean_job = await db.value(LAST_JOB)
    await db.all("TRUNCATE customers, import_jobs, import_ranges, import_seen, import_rejects")

    proc = cli("import", str(packed), "--no-progress", env=env)
    job = await kill_past(db, proc, 30)
    killed_at = job["bytes_done"]
    assert 0 < killed_at < packed.stat().st_size
    for _ in range(20):  # the dead process's lock may take a moment to go
        proc = cli("import", str(packed), "--no-progress", env=env)
        _, err = proc.communicate(timeout=240)
        if proc.returncode != 2:
            break
        time.sleep(0.2)
    assert proc.returncode == 0, err
    job = await db.value(LAST_JOB)
    assert await db.value("SELECT count(*) FROM import_jobs") == 1, "the restart resumed the job"
    assert job["bytes_done"] == job["bytes_total"] == packed.stat().st_size
    counters = ("inserted", "updated", "rejected", "rows_done")
    assert {k: job[k] for k in counters} == {k: clean_job[k] for k in counters}
    assert await db.all(TABLE) == clean
    # Lines and offsets of the rejects are the inflated stream's: the plain file's own.
    assert await db.all(REJECTS) == clean_rejects
