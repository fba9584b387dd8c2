"""At most one job is active, and one job has one runner: the database enforces both."""
import asyncio

import pytest

from server.importer import jobs
from server.importer.runner import JobRunner
from server.keys import config_key, database_url_key, pool_key
from tests.importing import HEADER, row, write_csv


async def test_two_concurrent_starts_create_exactly_one_job(client, db, tmp_path):
    pool = client.app[pool_key]
    path = write_csv(tmp_path / "a.csv", [HEADER, row(1, "A1")])
    results = await asyncio.gather(
        *(jobs.create(pool, filename=path.name, path=path, bytes_total=1) for _ in range(5)),
        return_exceptions=True)
    created = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, jobs.JobActive)]
    assert len(created) == 1 and len(refused) == 4
    assert all(r.job["id"] == created[0]["id"] for r in refused)
    assert await db.value("SELECT count(*) FROM import_jobs") == 1


async def test_two_runners_racing_for_one_job_run_it_once(client, db, tmp_path):
    app = client.app
    lines = [HEADER] + [row(i, f"R{i}") for i in range(3000)]
    path = write_csv(tmp_path / "race.csv", lines)
    job = await jobs.create(app[pool_key], filename=path.name, path=path, bytes_total=path.stat().st_size)
    runners = [JobRunner(app[config_key], app[pool_key], app[database_url_key]) for _ in range(2)]
    for number, runner in enumerate(runners):
        runner.worker = f"test-runner-{number}"
    try:
        statuses = await asyncio.gather(*(runner.run(job["id"]) for runner in runners))
    finally:
        for runner in runners:
            await runner.stop()
    # The app's own runner may have won the race too; then both of ours stand aside.
    assert statuses.count("completed") <= 1 and statuses.count(None) >= 1
    final = await jobs.get(app[pool_key], job["id"])
    for _ in range(200):
        if final["status"] == "completed":
            break
        await asyncio.sleep(0.05)
        final = await jobs.get(app[pool_key], job["id"])
    assert (final["status"], final["inserted"], final["rows_done"]) == ("completed", 3000, 3000)
    assert await db.value("SELECT count(*) FROM customers") == 3000


@pytest.mark.parametrize(("action", "allowed_from"), [("pause", "running"), ("cancel", "paused")])
async def test_controls_are_state_changes_in_the_database(db, tmp_path, action, allowed_from):
    # No app here, so no runner to act on the job while the test moves it.
    job = await jobs.create(db.pool, filename="x.csv", path=tmp_path / "x.csv", bytes_total=1)
    await db.all("UPDATE import_jobs SET status = %s WHERE id = %s", (allowed_from, job["id"]))
    changed = await jobs.control(db.pool, job["id"], action)
    assert changed["status"] == {"pause": "paused", "cancel": "cancelled"}[action]
    with pytest.raises(jobs.TransitionNotAllowed):
        await jobs.control(db.pool, job["id"], "resume" if action == "cancel" else "pause")
