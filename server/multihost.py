"""aiopg and libpq's multi-host URLs (`postgresql://h1:5432,h2:5432/db?target_session_attrs=read-write`).

libpq tries the hosts in turn, each on a new socket. aiopg (1.4, its last release)
watches the socket it saw when the connection began and never looks again: when the
first host is down, or is a standby that target_session_attrs turns away, the
connection waits on a socket libpq has closed until aiopg's timeout, and then fails
while closing it (aio-libs/aiopg#647; the fix, #579, was never merged). So after a
failover every new connection of the pool, the LISTEN connection and the CLI would
fail as long as the dead host is listed first.

install() wraps aiopg's readiness callback: after each poll it compares the socket
libpq now uses (number and inode: a new socket often reuses the old number) with the
one the event loop watches, and moves the reader (and writer) over when they differ.
It is applied once, when server.db is imported; everything that connects through
aiopg goes through that module's users.
"""
from __future__ import annotations

import contextlib
import os
import weakref

import aiopg.connection
import psycopg2.extensions

_INSTALLED = "_csvimp_follows_host_switches"
_CONNECTED = frozenset({psycopg2.extensions.STATUS_READY, psycopg2.extensions.STATUS_BEGIN,
                        psycopg2.extensions.STATUS_PREPARED})


def install() -> None:
    cls = aiopg.connection.Connection
    if getattr(cls, _INSTALLED, False):
        return
    original = cls._ready

    def ready(weak_self: weakref.ref) -> None:
        self = weak_self()
        if self is None:
            return
        # libpq changes sockets only while it connects; an open connection costs one look here.
        connecting = self._conn.status not in _CONNECTED
        if connecting and not hasattr(self, "_csvimp_socket"):
            self._csvimp_socket = _identity(self._fileno)
        try:
            original(weak_self)
        except (OSError, ValueError):
            # aiopg (un)watching the old socket's number after libpq closed it
            if not (connecting and _switched(self)):
                raise
        if connecting and _switched(self):
            _follow(self, weak_self)

    cls._ready = staticmethod(ready)  # type: ignore[method-assign]  # the deliberate patch this module is for
    setattr(cls, _INSTALLED, True)


def _identity(fd: int | None) -> tuple[int, int] | None:
    if fd is None:
        return None
    try:
        return fd, os.fstat(fd).st_ino
    except OSError:
        return None


def _current(conn) -> tuple[int, int] | None:
    raw = conn._conn
    if raw.closed or conn._fileno is None:
        return None
    try:
        return _identity(raw.fileno())
    except (OSError, ValueError, psycopg2.Error):
        return None


def _switched(conn) -> bool:
    now = _current(conn)
    return now is not None and now != conn._csvimp_socket


def _follow(conn, weak_self: weakref.ref) -> None:
    """Watch the socket libpq uses now instead of the one it closed."""
    now = _current(conn)
    assert now is not None
    fd = now[0]
    loop = conn._loop
    old = conn._fileno
    # The old socket is closed: the event loop may already have lost it (its epoll entry
    # went with the socket), so removing it may fail; forgetting it is all that matters.
    with contextlib.suppress(OSError, ValueError, KeyError):
        loop.remove_writer(old)
    with contextlib.suppress(OSError, ValueError, KeyError):
        loop.remove_reader(old)
    conn._fileno = fd
    conn._csvimp_socket = now
    # A new host's socket is usually still connecting (libpq waits to write), or already
    # waiting for the server's answer (to read). Watching both is safe: a poll while
    # libpq waits to read only reads nothing, and aiopg then drops the writer itself.
    loop.add_reader(fd, conn._ready, weak_self)
    loop.add_writer(fd, conn._ready, weak_self)
    conn._writing = True
