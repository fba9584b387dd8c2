"""Several hosts, IMPORT_DIRs not shared: a job goes to the process that can see its file."""
import asyncio
import dataclasses
import shutil
import subprocess

import aiohttp
import pytest

from server.app import create_app
from server.importer import jobs
from server.keys import pool_key, runner_key
from tests.importing import HEADER, row, wait_for_status, write_csv
from tests.processes import ServerProcess, admin_headers, server_env
from tests.waiting import eventually

# Two hosts on one machine: B runs in a mount namespace where A's IMPORT_DIR is an
# empty tmpfs, so A's files are not there for B, as on a host with its own disk.
UNSHARE = ["unshare", "--mount"] if shutil.which("unshare") else None


def can_hide_a_folder() -> bool:
    if UNSHARE is None:
        return False
    probe = subprocess.run([*UNSHARE, "sh", "-c", "mount -t tmpfs tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


def blind_to(folder) -> list[str]:
    """A ServerProcess wrapper: the server runs where `folder` is an empty tmpfs."""
    return [*UNSHARE, "sh", "-c", 'mount -t tmpfs tmpfs "$1" && shift && exec "$@"', "sh", str(folder)]


LEFT = "leaving it to a process that can read it"


async def unseen_since(db, job_id):
    return await db.value("SELECT file_unseen_since FROM import_jobs WHERE id = %s", (job_id,))


@pytest.mark.slow
@pytest.mark.skipif(not can_hide_a_folder(), reason="needs unshare --mount (root) to give B a disk of its own")
async def test_a_process_that_cannot_see_the_file_leaves_the_job_to_one_that_can(db_url, db, tmp_path):
    dirs = {name: tmp_path / name for name in ("a", "b")}
    for d in dirs.values():
        d.mkdir()
    env = {name: server_env(DATABASE_URL=db_url, IMPORT_DIR=str(d), WORKER_POLL_SECONDS="0.5")
           for name, d in dirs.items()}
    path = write_csv(dirs["a"] / "on-a.csv", [HEADER] + [row(i, f"H{i}") for i in range(300)])
    b = ServerProcess(env["b"], tmp_path / "b.log", wrapper=blind_to(dirs["a"]))
    a = ServerProcess(env["a"], tmp_path / "a.log")
    try:
        await b.start()
        async with aiohttp.ClientSession() as session:
            # A job whose file is on host A only (an upload A received, or a CLI on A).
            async with aiopg_pool(db_url) as pool:
                job = await jobs.create(pool, filename=path.name, path=path, bytes_total=path.stat().st_size)
            async def b_left_it_thrice() -> bool:  # B looks again, several times, and still leaves it
                return b.output().count(LEFT) >= 3 and await unseen_since(db, job["id"]) is not None
            await eventually(b_left_it_thrice)
            assert await db.value("SELECT status FROM import_jobs WHERE id = %s", (job["id"],)) == "queued"

            await a.start()
            headers = await admin_headers(db_url)

            async def a_ran_it() -> dict | None:
                async with session.get(f"{a.url}/import/jobs/{job['id']}", headers=headers) as resp:
                    job_now = await resp.json()
                return job_now if job_now["status"] not in ("queued", "running") else None
            done = await eventually(a_ran_it, timeout=20)
    finally:
        b.kill()
        a.kill()
    assert done["status"] == "completed", done
    assert done["inserted"] == 300
    assert await unseen_since(db, job["id"]) is None  # A saw it
    assert LEFT in b.output()


async def test_a_file_no_process_sees_fails_the_job_after_the_wait(config, db):
    app = create_app(dataclasses.replace(config, file_wait_seconds=1.5))
    # The app is started by hand: the test needs its runner, not a client.
    runner = aiohttp.test_utils.TestServer(app)
    await runner.start_server()
    try:
        missing = config.import_dir / "elsewhere.csv"
        job = await jobs.create(app[pool_key], filename=missing.name, path=missing, bytes_total=10)
        app[runner_key].wake()
        await asyncio.sleep(0.7)
        assert (await jobs.get(app[pool_key], job["id"]))["status"] == "queued"  # waits for another host
        failed = await wait_for_status(app, job["id"], ("failed",), timeout=15)
    finally:
        await runner.close()
    assert failed["error"] == "the file elsewhere.csv is no longer there"


def aiopg_pool(url):
    import aiopg
    return aiopg.create_pool(url, minsize=1, maxsize=1)
