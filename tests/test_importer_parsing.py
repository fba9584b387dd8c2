"""How files as they come are read: stray quotes, CR, long records, bounds, the formula guard.

Every physical line ends up once in an accepted row, a reject, or the skipped
blank lines; the counters agree with rejects.csv (docs/parsing.md).
"""
import csv
import dataclasses
import io

import aiohttp

from server.app import create_app
from server.importer.parse import parse_batch, read_header
from tests.importing import HEADER, import_file, row, write_csv

STRAY = "{i},id{i},Jo\"hn,\"Doe,Acme,Oslo,Norway,1,2,a@b.c,2020-01-01,http://x"


async def rejects_csv(client, job_id: int) -> list[dict]:
    csv.field_size_limit(10 * 1024**2)  # a long line's reject shows its first MAX_RECORD_BYTES
    resp = await client.get(f"/import/jobs/{job_id}/rejects.csv")
    assert resp.status == 200
    return list(csv.DictReader(io.StringIO(await resp.text())))


async def test_every_stray_quote_line_is_rejected_and_named_in_rejects_csv(client, db, tmp_path):
    path = write_csv(tmp_path / "stray.csv", [HEADER] + [STRAY.format(i=i) for i in range(30)])
    job = await import_file(client.app, path)
    assert job["status"] == "completed", job
    assert (job["rows_done"], job["rejected"], job["inserted"]) == (30, 30, 0)
    rejects = await rejects_csv(client, job["id"])
    assert [int(r["line_no"]) for r in rejects] == list(range(2, 32))


async def test_a_stray_quote_costs_its_own_line_only(client, db, tmp_path):
    lines = [HEADER, row(1, "S1"), '2,S2,O"Brien,Lee,Acme,Oslo,Norway,1,,a@b.c,2021-01-01,w,x',
             row(3, "S3"), row(4, "S4"), 'no,"quote,closes', row(6, "S6")]
    job = await import_file(client.app, write_csv(tmp_path / "s.csv", lines))
    # O"Brien reads as Python's csv module reads it: a quote inside an unquoted field is a character.
    assert await db.value("SELECT last_name FROM customers WHERE customer_id = 'S2'") == "Lee"
    assert await db.value("SELECT first_name FROM customers WHERE customer_id = 'S2'") == 'O"Brien'
    assert (job["inserted"], job["rejected"]) == (5, 1)
    assert [int(r["line_no"]) for r in await rejects_csv(client, job["id"])] == [6]


async def test_bare_cr_rejects_its_record_whole_and_every_reject_has_its_own_line(client, db, tmp_path):
    path = tmp_path / "cr.csv"
    path.write_bytes((HEADER + "\n").encode()
                     + b"1,crx1,Ann\rLee,Lee,Acme,Oslo,Norway,1,,a@b.c,2021-01-01,w,x\n"
                     + b"2,crx2,bad\rrow\rhere\n"
                     + b'3,crx3,"In\rquotes",Lee,Acme,Oslo,Norway,1,,a@b.c,2021-01-01,w,x\r\n'
                     + b'4,crx4,"A",Lee\r,Acme,Oslo,Norway,1,,a@b.c,2021-01-01,w,x\n')
    job = await import_file(client.app, path)
    assert await db.all("SELECT customer_id, first_name FROM customers") == [("crx3", "In\rquotes")]
    rejects = await rejects_csv(client, job["id"])
    assert [int(r["line_no"]) for r in rejects] == [2, 3, 5]
    assert job["rejected"] == len(rejects) == 3 and job["rows_done"] == 4
    assert all("carriage return" in r["reason"] or "new-line" in r["reason"] for r in rejects)


async def test_a_bare_cr_in_the_header_is_refused_on_upload(client):
    body = aiohttp.FormData()
    body.add_field("file", b"Customer Id,First\rName\n1,Ann\n", filename="cr.csv", content_type="text/csv")
    resp = await client.post("/import", data=body)
    assert resp.status == 422, await resp.text()
    assert "carriage return" in (await resp.json())["error"]


async def test_an_unquoted_line_longer_than_max_record_bytes_is_rejected(client, db, tmp_path):
    long_line = row(2, "LONG", about="x" * 1_100_000)
    path = write_csv(tmp_path / "long.csv", [HEADER, row(1, "OK1"), long_line, row(3, "OK3")])
    job = await import_file(client.app, path)
    assert (job["inserted"], job["rejected"]) == (2, 1)
    [reject] = await rejects_csv(client, job["id"])
    assert reject["line_no"] == "3" and "longer than" in reject["reason"]
    assert job["bytes_done"] == path.stat().st_size


async def test_a_batch_stops_at_the_reject_limit(client_as, config, db, tmp_path):
    client = await client_as("admin", app=create_app(dataclasses.replace(config, reject_limit=5)))
    lines = [HEADER] + [row(i, f"R{i}") for i in range(200)] + ["x"] * 3000
    job = await import_file(client.app, write_csv(tmp_path / "r.csv", lines))
    assert job["status"] == "failed" and "limit of 5" in job["error"]
    assert job["rejected"] == 6 == await db.value("SELECT count(*) FROM import_rejects")
    assert job["inserted"] == 200


def test_a_batch_is_bounded_by_rows_and_rejects_as_well_as_bytes(tmp_path):
    path = write_csv(tmp_path / "tiny.csv", ["Customer Id,Name"] + ["x"] * 5000 + [f"c{i},n" for i in range(5000)])
    header = read_header(path, 1024)
    size = path.stat().st_size
    first = parse_batch(path, header, header.data_offset, 2, batch_bytes=1 << 20, max_record_bytes=1024,
                        job_id=1, file_size=size, max_rows=100, max_rejects=300)
    assert (len(first.rejects), first.accepted, first.end_line) == (300, 0, 302)
    at = first
    while at.end_line <= 5001:
        at = parse_batch(path, header, at.end_offset, at.end_line, batch_bytes=1 << 20, max_record_bytes=1024,
                         job_id=1, file_size=size, max_rows=100, max_rejects=300)
    rows = parse_batch(path, header, at.end_offset, at.end_line, batch_bytes=1 << 20, max_record_bytes=1024,
                       job_id=1, file_size=size, max_rows=100, max_rejects=300)
    assert rows.accepted == 100 and not rows.rejects


async def test_an_exported_file_imports_back_to_the_same_values(client, db, tmp_path):
    for customer_id, phone, company in [("F1", "+1-555-0100", "=Acme"), ("F2", "-42", "@home"),
                                        ("F3", "'+quoted already", "Plain")]:
        resp = await client.post("/customers", json={"customer_id": customer_id, "phone_1": phone,
                                                     "company": company})
        assert resp.status == 201, await resp.text()
    before = await db.all("SELECT customer_id, phone_1, company FROM customers ORDER BY 1")
    resp = await client.get("/customers.csv")
    path = tmp_path / "export.csv"
    path.write_bytes(await resp.read())
    assert b"'+1-555-0100" in path.read_bytes()  # the export's guard stays
    await db.all("DELETE FROM customers")
    job = await import_file(client.app, path)
    assert job["status"] == "completed" and job["rejected"] == 0, job
    after = await db.all("SELECT customer_id, phone_1, company FROM customers ORDER BY 1")
    assert after[:2] == before[:2]


def test_the_parser_undoes_exactly_the_exports_formula_guard():
    from server import csvout
    from server.importer import records

    assert records.FORMULA_START == csvout.FORMULA_START
