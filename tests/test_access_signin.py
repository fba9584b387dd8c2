"""Signing a browser in and out: the page, passwords, one-time links, sessions, the rate limit."""
import asyncio
import collections
import dataclasses

import pytest

from server.app import create_app
from server.auth import store
from server.auth.roles import Role
from server.auth.sessions import COOKIE


def session_cookie(client) -> str:
    return next(c.value for c in client.session.cookie_jar if c.key == COOKIE)


async def test_the_sign_in_page_is_a_form_in_the_products_style(anonymous_client):
    resp = await anonymous_client.get("/login?next=/customers")
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    for part in ('action="/login"', 'name="name"', 'name="password"', 'type="password"',
                 'name="next" value="/customers"', "/static/css/app.css"):
        assert part in page


async def test_a_password_signs_in_and_the_cookie_then_reads_the_api(anonymous_client, db):
    await store.add_user(db.pool, "ann", Role.viewer, "correct horse")
    resp = await anonymous_client.post("/login", data={"name": "ann", "password": "correct horse",
                                                        "next": "/customers"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/customers"
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert (await anonymous_client.get("/customers")).status == 200
    page = await (await anonymous_client.get("/")).text()
    assert "ann" in page and 'id="sign-out-button"' in page and 'data-role="viewer"' in page


async def test_a_wrong_password_and_an_unknown_name_get_the_same_answer(anonymous_client, db):
    await store.add_user(db.pool, "ann", Role.viewer, "correct horse")
    for name, password in (("ann", "wrong horse"), ("nobody", "correct horse"), ("ann", "")):
        resp = await anonymous_client.post("/login", data={"name": name, "password": password},
                                           allow_redirects=False)
        assert resp.status == 401
        assert "Wrong name or password." in await resp.text()
        assert COOKIE not in resp.cookies
    assert (await anonymous_client.get("/customers")).status == 401


@pytest.mark.parametrize("next_path", ["//evil.example/x", "/\t/evil.example", "/\\evil.example",
                                       "https://evil.example", "/\n/evil.example"])
async def test_after_signing_in_only_a_path_of_this_site_is_followed(anonymous_client, db, next_path):
    await store.add_user(db.pool, "ann", Role.viewer, "correct horse")
    resp = await anonymous_client.post("/login", data={"name": "ann", "password": "correct horse",
                                                        "next": next_path}, allow_redirects=False)
    assert resp.headers["Location"] == "/"


async def test_a_one_time_link_signs_in_once(anonymous_client, aiohttp_client, app_server, db):
    await store.add_user(db.pool, "bo", Role.admin)
    secret = await store.create_login_link(db.pool, "bo")
    resp = await anonymous_client.get(f"/login/link/{secret}", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/"
    assert (await anonymous_client.get("/import")).status == 200

    other = await aiohttp_client(app_server)
    resp = await other.get(f"/login/link/{secret}", allow_redirects=False)
    assert resp.status == 410
    assert "used already or has expired" in await resp.text()
    assert (await other.get("/import")).status == 401


async def test_a_link_older_than_15_minutes_signs_nobody_in(anonymous_client, db):
    await store.add_user(db.pool, "bo", Role.admin)
    secret = await store.create_login_link(db.pool, "bo")
    assert await db.value("SELECT expires_at - now() FROM login_links") <= __import__("datetime").timedelta(minutes=15)
    await db.all("UPDATE login_links SET expires_at = now() - interval '1 second'")
    assert (await anonymous_client.get(f"/login/link/{secret}", allow_redirects=False)).status == 410


async def test_sign_out_ends_the_session_even_for_a_copy_of_the_cookie(browser_client, aiohttp_client, app_server):
    client = await browser_client("editor")
    stolen = session_cookie(client)
    resp = await client.post("/logout", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/login"
    assert (await client.get("/customers")).status == 401
    replay = await aiohttp_client(app_server)
    assert (await replay.get("/customers", headers={"Cookie": f"{COOKIE}={stolen}"})).status == 401


async def test_a_session_expires(browser_client, db):
    client = await browser_client("viewer")
    assert (await client.get("/customers")).status == 200
    await db.all("UPDATE user_sessions SET expires_at = now() - interval '1 second'")
    resp = await client.get("/customers")
    assert resp.status == 401 and resp.headers["WWW-Authenticate"] == "Bearer"


async def test_the_session_lifetime_is_session_max_age(aiohttp_client, config, db):
    client = await aiohttp_client(create_app(dataclasses.replace(config, session_max_age=90)))
    await store.add_user(db.pool, "cy", Role.viewer)
    resp = await client.get(f"/login/link/{await store.create_login_link(db.pool, 'cy')}", allow_redirects=False)
    assert "Max-Age=90" in resp.headers["Set-Cookie"]
    lifetime = await db.value("SELECT extract(epoch FROM expires_at - created_at) FROM user_sessions")
    assert 89 <= lifetime <= 91


async def test_removing_a_user_ends_their_sessions(browser_client, db):
    client = await browser_client("admin", name="dee")
    await store.remove_user(db.pool, "dee")
    assert (await client.get("/customers")).status == 401


@pytest.mark.slow
async def test_sign_in_attempts_are_limited_per_user_and_per_address(aiohttp_client, config, db):
    limited = dataclasses.replace(config, login_max_failures=3, login_max_failures_per_address=5,
                                  login_window_seconds=600)
    client = await aiohttp_client(create_app(limited))
    await store.add_user(db.pool, "ann", Role.viewer, "correct horse")
    await store.add_user(db.pool, "bob", Role.viewer, "battery staple")

    async def sign_in(name, password):
        return await client.post("/login", data={"name": name, "password": password}, allow_redirects=False)

    for _ in range(3):
        assert (await sign_in("ann", "guess")).status == 401
    resp = await sign_in("ann", "correct horse")  # even the right password waits now
    assert resp.status == 429
    assert 1 <= int(resp.headers["Retry-After"]) <= 600
    assert "Too many failed attempts" in await resp.text()
    assert (await sign_in("bob", "battery staple")).status == 303  # another user is not held up

    for _ in range(2):  # 5 failures from this address in all
        assert (await sign_in("carl", "guess")).status == 401
    assert (await sign_in("bob", "battery staple")).status == 429

    await db.all("UPDATE login_failures SET failed_at = failed_at - interval '601 seconds'")
    assert (await sign_in("ann", "correct horse")).status == 303


async def test_the_cookie_is_secure_when_people_come_over_https(aiohttp_client, config, db):
    secure = dataclasses.replace(config, public_url="https://imports.example.com", allowed_hosts=("*",))
    client = await aiohttp_client(create_app(secure))
    await store.add_user(db.pool, "cy", Role.viewer)
    resp = await client.get(f"/login/link/{await store.create_login_link(db.pool, 'cy')}", allow_redirects=False)
    assert "Secure" in resp.headers["Set-Cookie"]


async def test_the_sign_in_page_sends_a_signed_in_browser_on(browser_client):
    client = await browser_client("viewer")
    resp = await client.get("/login?next=/customers", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/customers"


async def test_guesses_sent_all_at_once_are_checked_no_more_than_the_limit(aiohttp_client, config, db):
    """The limit counts an attempt before its password is checked (argon2 takes a while):
    30 wrong guesses sent together get 5 answers of 401 and 25 of 429, and the right
    password, sent while they are in flight and after, is refused too."""
    limited = dataclasses.replace(config, login_max_failures=5, login_max_failures_per_address=1000,
                                  login_window_seconds=600)
    client = await aiohttp_client(create_app(limited))
    await store.add_user(db.pool, "ann", Role.viewer, "correct horse")

    async def sign_in(password):
        resp = await client.post("/login", data={"name": "ann", "password": password}, allow_redirects=False)
        return resp.status

    guesses = [asyncio.create_task(sign_in(f"guess {i}")) for i in range(30)]
    # The right password joins once the limit is reached, while the guesses are still being answered.
    while await db.value("SELECT count(*) FROM login_failures WHERE key = 'user:ann'") < 5:
        pass
    during = await sign_in("correct horse")
    statuses = collections.Counter(await asyncio.gather(*guesses))
    assert statuses == {401: 5, 429: 25}
    assert during == 429
    assert await sign_in("correct horse") == 429


async def test_sign_ins_from_several_processes_share_one_count(aiohttp_client, config, db):
    """Two app instances (as two server processes would be) on one database: still 5 checks."""
    limited = dataclasses.replace(config, login_max_failures=5, login_max_failures_per_address=1000,
                                  login_window_seconds=600)
    clients = [await aiohttp_client(create_app(limited)) for _ in range(2)]
    await store.add_user(db.pool, "ann", Role.viewer, "correct horse")
    answers = await asyncio.gather(*(
        clients[i % 2].post("/login", data={"name": "ann", "password": f"guess {i}"}, allow_redirects=False)
        for i in range(20)))
    assert collections.Counter(resp.status for resp in answers) == {401: 5, 429: 15}


async def test_a_right_password_takes_back_its_attempt(aiohttp_client, config, db):
    limited = dataclasses.replace(config, login_max_failures=5, login_max_failures_per_address=3)
    client = await aiohttp_client(create_app(limited))
    await store.add_user(db.pool, "ann", Role.viewer, "correct horse")
    for _ in range(6):  # more than the address's limit: signing in is not a failure
        resp = await client.post("/login", data={"name": "ann", "password": "correct horse"},
                                 allow_redirects=False)
        assert resp.status == 303
    assert await db.value("SELECT count(*) FROM login_failures") == 0


@pytest.mark.parametrize(("body", "content_type", "status"), [
    (b"name=a%00b&password=x", "application/x-www-form-urlencoded", 401),
    (b"name=ann&password=a%00b", "application/x-www-form-urlencoded", 401),
    (b"name=%00&password=%00&next=%00", "application/x-www-form-urlencoded", 401),
    (b"name=" + "\u00e9\u00e8".encode() * 100 + b"&password=x", "application/x-www-form-urlencoded", 401),
    (b"name=%ED%A0%80&password=x", "application/x-www-form-urlencoded", 401),  # a lone surrogate
    (b"name=" + b"a" * 5000 + b"&password=x", "application/x-www-form-urlencoded", 401),
    (b"name=\xff\xfe&password=x", "application/x-www-form-urlencoded", 400),  # not UTF-8
    (b"name=ann&password=x", "application/x-www-form-urlencoded; charset=klingon", 400),
    (b"name=ann&password=x", "application/json", 415),
    (b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nann\r\n--b--\r\n', "multipart/form-data; boundary=b",
     415),
])
async def test_odd_sign_in_forms_get_a_clear_answer_never_500(anonymous_client, db, body, content_type, status):
    await store.add_user(db.pool, "ann", Role.viewer, "correct horse")
    resp = await anonymous_client.post("/login", data=body, headers={"Content-Type": content_type},
                                       allow_redirects=False)
    assert resp.status == status, await resp.text()
    text = await resp.text()
    assert "Traceback" not in text
    if status == 401:
        assert "Wrong name or password." in text
    else:
        assert resp.content_type == "application/json" and "form" in (await resp.json())["error"]
