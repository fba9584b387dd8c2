"""A dry run reports the counters the import of the same file would, and writes no customer (docs/files.md)."""
from __future__ import annotations

import dataclasses
import time

import pytest

from server.app import create_app
from tests.importing import (HEADER, LAST_JOB, TERMINAL, kill_past, row, wait_for_status, write_csv,
                           write_messy_file)
from tests.processes import cli, server_env

COUNTERS = ("status", "inserted", "updated", "skipped_manual", "rejected", "rows_done", "bytes_done")
CUSTOMERS = """
    SELECT count(*), md5(string_agg(concat_ws('|', id, customer_id, first_name, updated_at,
                                              updated_manually_at), ',' ORDER BY id))
    FROM customers
"""
SEARCH = "SELECT count(*), md5(string_agg(id || doc, ',' ORDER BY id)) FROM customer_search"
SEQUENCE = "SELECT last_value, is_called FROM customers_id_seq"
SEARCH_INDEX = "SELECT oid FROM pg_class WHERE relname = 'customer_search_trgm'"


def counters(job: dict) -> dict:
    return {k: job[k] for k in COUNTERS}


async def the_database(db) -> tuple:
    """What a dry run must leave as it found it."""
    return (await db.one(CUSTOMERS), await db.one(SEARCH), await db.one(SEQUENCE), await db.value(SEARCH_INDEX))


async def test_a_dry_run_counts_what_the_import_that_follows_counts(client_as, config, db):
    # Batches of 100 rows: ids new to the table come back in later batches (an import
    # inserts them once, then updates them), within a batch, and with customers that
    # exist, one of them edited by hand; some rows are rejected.
    lines = [HEADER]
    lines += [row(i, f"N{i}") for i in range(1, 251)]                     # new, batches 1-3
    lines += [row(300 + i, f"N{i}", "Again") for i in range(1, 121, 3)]  # new ids again, later
    lines += [row(500 + i, f"OLD{i}") for i in range(5)]                 # in the table
    lines += [row(600, "HAND", "FromFile"), row(601, "HAND", "Twice")]   # edited by hand, twice
    lines += [row(700, "N7", "Thrice"), row(701, "N7", "Four")]          # a repeat within a batch
    lines += ["702,,no id,x,x,x,x,x,x,x,2020-01-01,x,x", row(703, "BAD", date="31-31-2020")]
    path = write_csv(config.import_dir / "repeats.csv", lines)
    await db.all("INSERT INTO customers (customer_id, first_name) SELECT 'OLD' || i, 'Old' FROM generate_series(0, 4) i")
    await db.all("INSERT INTO customers (customer_id, first_name, updated_manually_at) VALUES ('HAND', 'ByHand', now())")
    # Small batches, and an index drop a real import of this size would do at once.
    client = await client_as("admin", app=create_app(dataclasses.replace(
        config, batch_rows=100, search_rebuild_min_rows=0, search_rebuild_share=0.01)))
    before = await the_database(db)
    assert before[3] is not None

    resp = await client.post("/import", json={"path": path.name, "dry_run": True})
    assert resp.status == 202, await resp.text()
    dry = await wait_for_status(client.app, (await resp.json())["id"], TERMINAL)
    assert dry["status"] == "completed", dry
    assert await the_database(db) == before, "a dry run changed customers, search, the sequence or the index"
    assert await db.value("SELECT count(*) FROM import_dry_run_inserted") == 0, "its ids outlived the job"

    resp = await client.post("/import", json={"path": path.name})
    assert resp.status == 202, await resp.text()
    real = await wait_for_status(client.app, (await resp.json())["id"], TERMINAL)
    assert real["status"] == "completed", real
    assert (real["inserted"], real["skipped_manual"], real["rejected"]) == (250, 2, 2), real
    assert counters(dry) == counters(real)


async def test_a_dry_run_that_meets_its_reject_limit_fails_as_the_import_would(client_as, config, db):
    lines = [HEADER] + [row(i, f"N{i}") for i in range(1, 150)] + ["x,,no id,x,x,x,x,x,x,x,,x,x"] * 3
    path = write_csv(config.import_dir / "bad.csv", lines)
    client = await client_as("admin", app=create_app(dataclasses.replace(config, batch_rows=100, reject_limit=2)))
    jobs = []
    for dry_run in (True, False):
        resp = await client.post("/import", json={"path": path.name, "dry_run": dry_run})
        assert resp.status == 202, await resp.text()
        jobs.append(await wait_for_status(client.app, (await resp.json())["id"], TERMINAL))
    assert jobs[0]["status"] == "failed"
    assert counters(jobs[0]) == counters(jobs[1])
    assert await db.value("SELECT count(*) FROM import_dry_run_inserted") == 0


async def test_a_dry_run_never_builds_the_search_index(client, config, db):
    # Missing (say a build failed): building it is an import's work, with its cost and locks.
    await db.all("DROP INDEX customer_search_trgm")
    path = write_csv(config.import_dir / "few.csv", [HEADER] + [row(i, f"N{i}") for i in range(1, 20)])
    resp = await client.post("/import", json={"path": path.name, "dry_run": True})
    assert resp.status == 202, await resp.text()
    job = await wait_for_status(client.app, (await resp.json())["id"], TERMINAL)
    assert (job["status"], job["inserted"]) == ("completed", 19)
    assert await db.value(SEARCH_INDEX) is None


@pytest.mark.slow
async def test_a_dry_run_killed_mid_way_resumes_to_the_same_counters(db, db_url, tmp_path):
    path = write_messy_file(tmp_path / "big.csv", seed=5, repeats=300, bad_rows=3)
    env = server_env(DATABASE_URL=db_url, IMPORT_BATCH_BYTES=str(64 * 1024))

    def run_to_end() -> None:
        for _ in range(20):  # a killed process's lock may take a moment to go
            proc = cli("import", str(path), "--dry-run", "--no-progress", env=env)
            _, err = proc.communicate(timeout=240)
            if proc.returncode != 2:
                break
            time.sleep(0.2)
        assert proc.returncode == 0, err

    run_to_end()
    clean = await db.value(LAST_JOB)
    assert (clean["status"], clean["inserted"], clean["updated"], clean["rejected"]) == \
        ("completed", 12_000, 300, 3), clean
    await db.all("DELETE FROM import_jobs")
    before = await the_database(db)

    proc = cli("import", str(path), "--dry-run", "--no-progress", env=env)
    job = await kill_past(db, proc, 40)
    assert 0 < job["bytes_done"] < path.stat().st_size
    assert await db.value("SELECT count(*) FROM import_dry_run_inserted") > 0, "what it counted was kept"
    run_to_end()
    resumed = await db.value(LAST_JOB)
    assert await db.value("SELECT count(*) FROM import_jobs") == 1, "the restart resumed the job"
    assert counters(resumed) == counters(clean)
    assert await the_database(db) == before
    assert await db.value("SELECT count(*) FROM import_dry_run_inserted") == 0


@pytest.mark.parametrize("narrow", [False, True], ids=["every-column", "without-email"])
async def test_an_id_repeated_across_batches_counts_the_same_in_a_dry_run(client_as, config, db, narrow):
    # Each id below comes back in a later batch (batches of 100 rows), with the values it
    # had or with others: the import judges the later line by what its earlier batch
    # wrote, and a dry run, which wrote nothing, must judge it the same way.
    setup = [HEADER] + [row(1, cid, "Old") for cid in ("ES", "ED", "EB")] + [row(2, "EK", "Keep")]
    batches = [
        [row(1, "NS", "A"), row(2, "ND", "A"), row(3, "N3", "A"), row(4, "ES", "B"), row(5, "ED", "B"),
         row(6, "EB", "B"), row(7, "EK", "Keep"), row(8, "HAND", "A")],
        [row(1, "NS", "A"), row(2, "ND", "B"), row(3, "N3", "A"), row(4, "ES", "B"), row(5, "ED", "C"),
         row(6, "EB", "Old"), row(7, "EK", "Keep"), row(8, "HAND", "B")],
        [row(3, "N3", "B")],
    ]
    lines = [HEADER]
    for number, batch in enumerate(batches):
        lines += batch + [row(9, f"F{number}-{i}") for i in range(100 - len(batch))]
    if narrow:  # the file has no Email: the columns it has are compared, and no digest is stored
        lines = [",".join(line.split(",")[:9] + line.split(",")[10:]) for line in lines]
        assert "Email" not in lines[0]
    # One pipeline: the import reads the file in order, as a dry run does.
    app = create_app(dataclasses.replace(config, batch_rows=100, import_workers=1))
    client = await client_as("admin", app=app)
    resp = await client.post("/import", json={"path": write_csv(config.import_dir / "setup.csv", setup).name})
    assert resp.status == 202, await resp.text()
    assert (await wait_for_status(client.app, (await resp.json())["id"], TERMINAL))["inserted"] == 4
    await db.all("INSERT INTO customers (customer_id, first_name, updated_manually_at) VALUES ('HAND', 'H', now())")
    path = write_csv(config.import_dir / "repeats.csv", lines)

    jobs = {}
    for dry_run in (True, False):
        resp = await client.post("/import", json={"path": path.name, "dry_run": dry_run})
        assert resp.status == 202, await resp.text()
        jobs[dry_run] = await wait_for_status(client.app, (await resp.json())["id"], TERMINAL)
    outcome = ("status", "inserted", "updated", "unchanged", "skipped_manual", "rejected", "rows_done")
    real = {k: jobs[False][k] for k in outcome}
    # New: NS, ND, N3 and the fillers. Updated: ND's second line, ES's first, both of
    # ED's and EB's, N3's third. Unchanged: the repeats of NS, ES, N3's second, EK twice.
    assert real == {"status": "completed", "inserted": 3 + 300 - 17, "updated": 7, "unchanged": 5,
                    "skipped_manual": 2, "rejected": 0, "rows_done": 300}, real
    assert {k: jobs[True][k] for k in outcome} == real
