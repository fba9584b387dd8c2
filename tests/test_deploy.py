"""deploy/nginx/csv-import.conf, run by Debian's nginx in front of two app processes.

Through nginx: the event stream delivers events as they happen, a tus upload
(POST, PATCH, HEAD) and a multipart upload go through, and a job started
through one process goes on in the other when the first is killed.
"""
import asyncio
import base64
import os
import re
import shutil
import subprocess

import aiohttp
import pytest

from server.generate import generate
from tests.importing import HEADER, row
from tests.processes import REPO, ServerProcess, admin_headers, free_port, server_env, wait_healthy
from tests.sse import open_stream
from tests.test_multiprocess import TABLE, expected_table
from tests.waiting import eventually

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
SITE = REPO / "deploy" / "nginx" / "csv-import.conf"
TUS = {"Tus-Resumable": "1.0.0"}

MAIN = """\
{user}worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/site.conf;
}}
"""


def render_site(port: int, upstreams: list[int]) -> str:
    """The repository's site config with this test's ports, and nothing else changed."""
    text = SITE.read_text()
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;\n" for p in upstreams)
    text, n = re.subn(r"(?m)^    server 127\.0\.0\.1:\d+ .*;\n(?:    server 127\.0\.0\.1:\d+ .*;\n)*",
                      servers, text, count=1)
    assert n == 1, "the upstream block of deploy/nginx/csv-import.conf changed shape"
    text, n = re.subn(r"(?m)^    listen 80;$", f"    listen 127.0.0.1:{port};", text)
    assert n == 1, "the listen line of deploy/nginx/csv-import.conf changed shape"
    return text


@pytest.fixture
def nginx(tmp_path):
    """`await nginx(upstream ports)` starts nginx with the rendered config and returns its URL
    once /healthz answers through it."""
    if NGINX is None:
        pytest.fail("nginx is missing: ./run.sh test installs Debian's nginx")
    procs = []

    async def start(upstreams: list[int]) -> str:
        port = free_port()
        conf = tmp_path / "nginx"
        conf.mkdir()
        (conf / "site.conf").write_text(render_site(port, upstreams))
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read the tmp dir
        (conf / "nginx.conf").write_text(MAIN.format(tmp=conf, user=user))
        check = subprocess.run([NGINX, "-t", "-p", f"{conf}/", "-c", str(conf / "nginx.conf"),
                                "-e", str(conf / "error.log")], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        procs.append(subprocess.Popen([NGINX, "-p", f"{conf}/", "-c", str(conf / "nginx.conf"),
                                       "-e", str(conf / "error.log")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        url = f"http://127.0.0.1:{port}"
        await wait_healthy(url, procs[-1], log=conf / "error.log")  # through nginx, to an app process
        return url

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def two_servers(db_url, tmp_path):
    imports = tmp_path / "imports"
    imports.mkdir()
    env = server_env(DATABASE_URL=db_url, IMPORT_DIR=str(imports), WORKER_POLL_SECONDS="1",
                     IMPORT_BATCH_BYTES=str(64 * 1024), TRUSTED_PROXIES="127.0.0.1")
    both = [ServerProcess(env, tmp_path / f"server{n}.log") for n in range(2)]
    yield both
    for server in both:
        server.kill()


async def job_through(session, url: str, job_id: int) -> dict:
    async with session.get(f"{url}/import/jobs/{job_id}") as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


@pytest.mark.slow
async def test_two_processes_behind_nginx(two_servers, nginx, db, db_url, tmp_path):
    await asyncio.gather(*(s.start() for s in two_servers))
    url = await nginx([s.port for s in two_servers])
    async with aiohttp.ClientSession(headers=await admin_headers(db_url)) as session:
        stream = await open_stream(session, url + "/import/events")
        assert (await stream.next()).event == "snapshot"

        # tus through nginx: create, two PATCHes, HEAD, then import it.
        data = ("\n".join([HEADER] + [row(i, f"N{i}") for i in range(1, 501)]) + "\n").encode()
        async with session.post(url + "/uploads", headers={
                **TUS, "Upload-Length": str(len(data)),
                "Upload-Metadata": "filename " + base64.b64encode(b"tus.csv").decode()}) as resp:
            assert resp.status == 201, await resp.text()
            upload = resp.headers["Location"]
        half = len(data) // 2
        for offset, chunk in ((0, data[:half]), (half, data[half:])):
            async with session.patch(url + upload, data=chunk, headers={
                    **TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}) as resp:
                assert resp.status == 204, await resp.text()
        async with session.head(url + upload, headers=TUS) as resp:
            assert resp.headers["Upload-Offset"] == str(len(data))
        async with session.post(url + "/import", json={"upload": upload.rsplit("/", 1)[1]}) as resp:
            assert resp.status in (200, 201, 202), await resp.text()
            small = await resp.json()
        # The stream through nginx tells of it as it happens, not when a buffer fills.
        ended = await stream.until(lambda e: e.job.get("id") == small["id"] and e.job["status"] == "completed",
                                   timeout=60)
        assert ended[-1].job["inserted"] == 500

        # A multipart upload through nginx, large enough to be killed half-way.
        path = tmp_path / "big.csv"
        generate(path, 40_000, seed=7, about_bytes=400)
        with open(path, "rb") as f:
            form = aiohttp.FormData()
            form.add_field("file", f, filename="big.csv", content_type="text/csv")
            async with session.post(url + "/import", data=form) as resp:
                assert resp.status in (200, 201, 202), await resp.text()
                big = await resp.json()
        running = await stream.until(lambda e: e.job.get("id") == big["id"] and e.event == "progress"
                                     and e.job["worker"] is not None and e.job["bytes_done"] > 0, timeout=60)
        assert running[-1].job["status"] == "running", "the import ended too soon to be killed"
        stream.response.close()
        runner_pid = int(running[-1].job["worker"].rsplit(":", 1)[1])
        [first] = [s for s in two_servers if s.pid == runner_pid]
        [other] = [s for s in two_servers if s is not first]
        first.kill()

        # nginx now sends everything to the other process, which takes the job over.
        async def the_job_ended() -> dict | None:
            job = await job_through(session, url, big["id"])
            return job if job["status"] != "running" else None
        job = await eventually(the_job_ended, timeout=60)
    assert job["status"] == "completed", job
    assert job["worker"] is None or job["worker"].endswith(f":{other.pid}")
    took_over = re.search(rf"import job {big['id']} started at byte (\d+)", other.output())
    assert took_over and int(took_over.group(1)) > 0, "the other process did not go on from the checkpoint"
    count, checksum = await db.one(TABLE)
    expected_count, _ = expected_table(path)
    assert count == expected_count + 500

