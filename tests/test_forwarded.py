"""TRUSTED_PROXIES: behind nginx, each client keeps its own address (server/forwarded.py)."""
import dataclasses

from server.app import create_app
from server.auth import store
from server.auth.roles import Role


async def test_trusted_proxies_give_each_client_its_own_sign_in_limit(client_as, config, db):
    async def failures_until_refused(client, forwarded_for: str) -> int:
        for n in range(1, 6):
            resp = await client.post("/login", data={"name": "nobody", "password": "guess"},
                                     headers={"X-Forwarded-For": forwarded_for}, allow_redirects=False)
            if resp.status == 429:
                return n
        return 0

    await store.add_user(db.pool, "ann", Role.viewer, "correct horse")
    limited = dataclasses.replace(config, login_max_failures=100, login_max_failures_per_address=2)
    # Behind a trusted proxy, 10.0.0.1's failures do not hold 10.0.0.2 up.
    behind = await client_as("viewer", app=create_app(dataclasses.replace(limited, trusted_proxies=("127.0.0.1",))))
    assert await failures_until_refused(behind, "10.0.0.1") == 3
    assert await failures_until_refused(behind, "10.0.0.2") == 3
    # Untrusted, the header is anyone's to send: it changes nothing.
    await db.all("DELETE FROM login_failures")
    direct = await client_as("viewer", app=create_app(limited))
    assert await failures_until_refused(direct, "10.0.0.3") == 3
    assert await failures_until_refused(direct, "10.0.0.4") == 1
