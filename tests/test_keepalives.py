"""The connection that holds a job asks for TCP keepalives at both ends (server/db.py)."""
import contextlib
import dataclasses

from server.db import job_connection

TCP = ("tcp_keepalives_count", "tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_user_timeout")


def test_the_job_connection_sets_keepalives_at_both_ends(config, db_url):
    config = dataclasses.replace(config, keepalive_idle_seconds=7, keepalive_interval_seconds=3,
                                 keepalive_count=4)
    with contextlib.closing(job_connection(config, db_url + ("&" if "?" in db_url else "?") + "options=-c%20search_path%3Dpublic",
                                           "keepalive test")) as conn, conn.cursor() as cur:
        # The server side: what the session was started with (a Unix socket then reads
        # them as 0, a TCP connection as these values; either way the session asked).
        cur.execute("SELECT name, source FROM pg_settings WHERE name = ANY(%s) OR name = 'search_path'",
                    (list(TCP),))
        sources = dict(cur.fetchall())
        # The client side: libpq's own probes.
        libpq = conn.get_dsn_parameters()
    assert sources == {**{name: "client" for name in TCP}, "search_path": "client"}  # the URL's options kept
    assert "tcp_keepalives_idle=7" in libpq["options"] and "tcp_user_timeout=19000" in libpq["options"]
    assert (libpq["keepalives"], libpq["keepalives_idle"], libpq["keepalives_interval"],
            libpq["keepalives_count"]) == ("1", "7", "3", "4")

