"""/healthz names the part of the process that is unwell, each one broken for real."""
import asyncio

from server.events import LISTENER_NAME
from server.keys import runner_key


async def health(client) -> tuple[int, dict]:
    resp = await client.get("/healthz")
    return resp.status, await resp.json()


async def test_a_dead_listen_connection_is_named_until_it_is_back(anonymous_client, db):
    assert (await health(anonymous_client))[0] == 200
    killed = await db.value("SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND application_name = %s) t",
                            (LISTENER_NAME,))
    assert killed == 1
    seen = None
    for _ in range(100):
        status, body = await health(anonymous_client)
        if status == 503:
            seen = body
            break
        await asyncio.sleep(0.01)
    assert seen is not None, "/healthz never noticed the LISTEN connection had gone"
    assert set(seen["problems"]) == {"events"}
    assert "LISTEN" in seen["problems"]["events"]
    # It reconnects (0.5 s backoff first), and health comes back on its own.
    for _ in range(100):
        if (await health(anonymous_client))[0] == 200:
            break
        await asyncio.sleep(0.05)
    assert (await health(anonymous_client))[0] == 200


async def test_a_dead_runner_task_is_named(anonymous_client, app):
    assert (await health(anonymous_client))[0] == 200
    task = app[runner_key]._task
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    status, body = await health(anonymous_client)
    assert status == 503
    assert set(body["problems"]) == {"runner"}
    assert "runner" in body["status"]
