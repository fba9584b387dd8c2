"""./run.sh bench --uploads MB (and the end of a whole `./run.sh bench`, at 300 MB): one file
sent to one server, by multipart and by tus, side by side.

Multipart is POST /import (timed until its 202; the job it starts is cancelled
before the next run). tus is POST /uploads plus PATCHes of a few chunk sizes
(timed until the last 204, which includes the server's sha256 of the whole
file). Runs alternate, twice over, so a noisy neighbour hurts both alike.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from ..config import Config
from ..db import resolve_database_url
from ..generate import generate
from .runner import REPO, _admin_headers, _fresh_database, _free_port, _wait_healthy

TUS = {"Tus-Resumable": "1.0.0"}
CHUNK_SIZES = (5 * 1024**2, 16 * 1024**2, None)  # 16 MB: the page's; None: the whole file in one PATCH
ROUNDS = 3
WHOLE_BENCH_MEGABYTES = 300  # the file `./run.sh bench` (no mode) sends both ways after its imports


def run_upload_bench(config: Config, megabytes: int) -> int:
    bench_dir = config.data_dir / "bench"
    bench_dir.mkdir(parents=True, exist_ok=True)
    csv_path = bench_dir / f"upload-{megabytes}mb.csv"
    if not csv_path.exists():
        print(f"generating {csv_path} ...", file=sys.stderr)
        generate(csv_path, megabytes * 1000, seed=1, about_bytes=900)  # about 1 KB a row
    import_dir = bench_dir / "upload-imports"
    shutil.rmtree(import_dir, ignore_errors=True)
    import_dir.mkdir()
    db_url = _fresh_database(asyncio.run(resolve_database_url(config)))
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "IMPORT_DIR": str(import_dir), "PORT": str(port)}
    server = subprocess.Popen([sys.executable, "-m", "server", "serve"], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        results = asyncio.run(_measure(f"http://127.0.0.1:{port}", csv_path, db_url))
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(import_dir, ignore_errors=True)
    _print_table(results, csv_path.stat().st_size)
    return 0


def session(headers: dict[str, str]) -> aiohttp.ClientSession:
    """Every request of this benchmark goes through here, signed in as an admin."""
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None), headers=headers)


async def _measure(base: str, path: Path, db_url: str) -> dict[str, list[float]]:
    await _wait_healthy(base)
    results: dict[str, list[float]] = {}
    async with session(await _admin_headers(db_url)) as http:
        for _ in range(ROUNDS):
            results.setdefault("multipart POST /import", []).append(await _multipart(http, base, path))
            for chunk in CHUNK_SIZES:
                name = f"tus, {chunk // 1024**2} MB PATCHes" if chunk else "tus, one PATCH"
                results.setdefault(name, []).append(await _tus(http, base, path, chunk))
    return results


async def _multipart(http: aiohttp.ClientSession, base: str, path: Path) -> float:
    started = time.perf_counter()
    with await asyncio.to_thread(path.open, "rb") as f:
        form = aiohttp.FormData()
        form.add_field("file", f, filename=path.name, content_type="text/csv")
        async with http.post(f"{base}/import", data=form) as resp:
            job = await resp.json()
            if resp.status != 202:
                raise SystemExit(f"multipart upload refused ({resp.status}): {job}")
    seconds = time.perf_counter() - started
    async with http.post(f"{base}/import/jobs/{job['id']}/cancel") as resp:
        await resp.read()
    while True:  # the next run must not share the machine with an import
        async with http.get(f"{base}/import/jobs/{job['id']}") as resp:
            if (await resp.json())["status"] in ("completed", "failed", "cancelled"):
                return seconds
        await asyncio.sleep(0.2)


async def _tus(http: aiohttp.ClientSession, base: str, path: Path, chunk: int | None) -> float:
    size = (await asyncio.to_thread(path.stat)).st_size
    started = time.perf_counter()
    async with http.post(f"{base}/uploads", headers={**TUS, "Upload-Length": str(size)}) as resp:
        if resp.status != 201:
            raise SystemExit(f"tus creation refused ({resp.status}): {await resp.text()}")
        url = base + resp.headers["Location"]
    headers = {**TUS, "Content-Type": "application/offset+octet-stream"}
    with await asyncio.to_thread(path.open, "rb") as f:
        offset = 0
        while offset < size:
            body = f if chunk is None else await asyncio.to_thread(f.read, chunk)
            async with http.patch(url, data=body, headers={**headers, "Upload-Offset": str(offset)}) as resp:
                if resp.status != 204:
                    raise SystemExit(f"PATCH refused ({resp.status}): {await resp.text()}")
                offset = int(resp.headers["Upload-Offset"])
    seconds = time.perf_counter() - started
    async with http.delete(url, headers=TUS) as resp:
        await resp.read()
    return seconds


def _print_table(results: dict[str, list[float]], size: int) -> None:
    mb = size / 1e6
    baseline = min(results["multipart POST /import"])
    print(f"\nupload throughput, {mb:,.0f} MB file, one client on this machine, best of {ROUNDS}")
    print("| how | seconds (each run) | MB/s (best) | vs multipart |")
    print("| --- | ---: | ---: | ---: |")
    for name, runs in results.items():
        best = min(runs)
        print(f"| {name} | {' / '.join(f'{s:.2f}' for s in runs)} | {mb / best:,.0f} | {baseline / best:.2f}x |")
