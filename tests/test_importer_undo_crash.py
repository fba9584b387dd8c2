"""An undo killed at random instants, then resumed by another server, ends as a clean undo does."""
import asyncio
import random

import aiohttp
import pytest

from server.generate import generate

from tests.importing import TERMINAL, kill_past, row
from tests.processes import Serve, admin_headers, cli, server_env
from tests.test_importer_crash import TABLE_CHECKSUM

COUNTERS = ("status", "deleted", "updated", "unchanged", "rejected", "rows_done", "bytes_done", "bytes_total")
REJECTS = "SELECT line_no, raw FROM import_rejects WHERE job_id = %s ORDER BY line_no"


def _files(tmp_path):
    base, later = tmp_path / "base.csv", tmp_path / "later.csv"
    generate(base, 6_000, seed=3, about_bytes=100)
    generate(later, 6_000, seed=4, about_bytes=100)
    with open(base, encoding="utf-8") as f:
        ids = [line.split(",")[1] for line in list(f)[1:3001]]
    with open(later, "a", encoding="utf-8") as f:  # half of the base's customers change
        f.writelines(row(50_000 + i, cid, f"Changed{i}") + "\n" for i, cid in enumerate(ids))
    return base, later


async def _set_the_stage(db, env, base, later) -> int:
    """Both files imported, one customer edited by hand since; the id of the job to undo."""
    await db.all("TRUNCATE customers, import_jobs, import_ranges, import_seen, import_rejects, customer_history")
    for path in (base, later):
        proc = cli("import", str(path), "--no-progress", env=env)
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    await db.all("UPDATE customers SET first_name = 'ByHand', updated_manually_at = now(), "
                 "updated_manually_by = 'someone' WHERE first_name = 'Changed7'")
    return await db.value("SELECT max(id) FROM import_jobs")


async def _start_undo(serve: Serve, db_url: str, job_id: int) -> int:
    async with aiohttp.ClientSession(headers=await admin_headers(db_url)) as http:
        async with http.post(f"{serve.base}/import/jobs/{job_id}/undo") as resp:
            assert resp.status == 202, await resp.text()
            return (await resp.json())["id"]


async def _outcome(db, undo_id: int) -> tuple:
    job = await db.value("SELECT import_job_json(j) FROM import_jobs j WHERE id = %s", (undo_id,))
    return ({k: job[k] for k in COUNTERS}, await db.one(TABLE_CHECKSUM), await db.all(REJECTS, (undo_id,)))


async def _until_done(db, undo_id: int, timeout: float = 120) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (status := await db.value("SELECT status FROM import_jobs WHERE id = %s", (undo_id,))) not in TERMINAL:
        assert asyncio.get_running_loop().time() < deadline, f"the undo is still {status}"
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_an_undo_killed_at_random_then_resumed_leaves_the_table_of_a_clean_undo(db, db_url, tmp_path):
    base, later = _files(tmp_path)
    env = server_env(DATABASE_URL=db_url, UNDO_SLICE_ROWS="150", WORKER_POLL_SECONDS="0.2")
    undone = await _set_the_stage(db, env, base, later)
    async with Serve(tmp_path, DATABASE_URL=db_url, UNDO_SLICE_ROWS="150") as serve:
        undo_id = await _start_undo(serve, db_url, undone)
        await _until_done(db, undo_id)
    clean = await _outcome(db, undo_id)
    assert clean[0]["status"] == "completed" and clean[0]["rejected"] == 1
    assert clean[0]["deleted"] == 6_000 and clean[0]["updated"] == 2_999

    undone = await _set_the_stage(db, env, base, later)
    seed = random.randrange(1 << 30)
    moments = [10 + 25 * i + random.Random(seed + i).uniform(0, 15) for i in range(3)]
    undo_id, killed_at = None, []
    for percent in moments:
        async with Serve(tmp_path, DATABASE_URL=db_url, UNDO_SLICE_ROWS="150") as serve:
            if undo_id is None:
                undo_id = await _start_undo(serve, db_url, undone)
            seen = await kill_past(db, serve.proc, percent)
            killed_at.append(seen["bytes_done"])
    assert killed_at[0] < clean[0]["bytes_total"], "the first kill came before the undo's end"
    async with Serve(tmp_path, DATABASE_URL=db_url, UNDO_SLICE_ROWS="150"):
        await _until_done(db, undo_id)
    assert await db.value("SELECT count(*) FROM import_jobs WHERE kind = 'undo'") == 1
    assert await _outcome(db, undo_id) == clean, f"seed {seed}, killed at customer {killed_at} of {clean[0]['bytes_total']}"
    print(f"killed at customers {killed_at} of {clean[0]['bytes_total']}; seed {seed}")
