"""The migrated database each test gets: one per pytest process, emptied between tests.

Copying the migrated template for every test cost more than most tests (a copy and a
drop take 0.1 s on a quiet machine, over 0.5 s on a loaded one; a PostgreSQL database
is 8 MB of catalogs before it holds a row). So each pytest process (each xdist worker)
keeps one copy and empties it before the next test, as a fresh copy would be:

- every table a test wrote to is truncated, its statistics deleted (an import ends with
  ANALYZE: the next test's plans must not follow them), every sequence set back;
- the database's activity counters are reset;
- a test that changed the schema (an ALTER TABLE, a DROP INDEX, an import that dropped
  and remade an index) or the rows the migrations wrote leaves a database that no
  emptying makes new again: the catalog fingerprint says so, and the next test gets a
  fresh copy, made ahead on a thread while the tests ran. So does a test that left a
  session open (a thread or process still running would reconnect into the next
  test's data); the old copy is dropped, and its sessions with it.
"""
from __future__ import annotations

import contextlib
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg2
from psycopg2 import sql

from server.db import drop_database, recreate_database, with_database

# What a schema change touches and emptying does not. A new or changed catalog row has a
# newer xmin and a dropped one lowers the count; pg_class is read by its columns instead,
# since TRUNCATE gives a table new files and so rewrites its row. Temporary schemas (an
# import's session makes one) and their objects leave with the session.
CATALOGS = """
SELECT md5(string_agg(part, ',' ORDER BY part)) FROM (
  SELECT 'attribute ' || count(*) || ' ' || max(xmin::text::bigint) FROM pg_attribute
  UNION ALL SELECT 'attrdef ' || count(*) || ' ' || max(xmin::text::bigint) FROM pg_attrdef
  UNION ALL SELECT 'constraint ' || count(*) || ' ' || max(xmin::text::bigint) FROM pg_constraint
  UNION ALL SELECT 'index ' || count(*) || ' ' || max(xmin::text::bigint) FROM pg_index
  UNION ALL SELECT 'proc ' || count(*) || ' ' || max(xmin::text::bigint) FROM pg_proc
  UNION ALL SELECT 'trigger ' || count(*) || ' ' || max(xmin::text::bigint) FROM pg_trigger
  UNION ALL SELECT 'type ' || count(*) || ' ' || max(xmin::text::bigint) FROM pg_type
  UNION ALL SELECT 'depend ' || count(*) || ' ' || max(xmin::text::bigint) FROM pg_depend
  UNION ALL SELECT 'rewrite ' || count(*) || ' ' || max(xmin::text::bigint) FROM pg_rewrite
  UNION ALL SELECT 'policy ' || count(*) || ' ' || max(xmin::text::bigint) FROM pg_policy
  UNION ALL SELECT 'sequence ' || count(*) || ' ' || max(xmin::text::bigint) FROM pg_sequence
  UNION ALL SELECT 'extension ' || count(*) || ' ' || max(xmin::text::bigint) FROM pg_extension
  UNION ALL SELECT 'event_trigger ' || count(*) || ' ' || max(xmin::text::bigint) FROM pg_event_trigger
  UNION ALL SELECT 'statistic_ext ' || count(*) || ' ' || max(xmin::text::bigint) FROM pg_statistic_ext
  UNION ALL SELECT 'inherits ' || count(*) || ' ' || max(xmin::text::bigint) FROM pg_inherits
  UNION ALL SELECT 'description ' || count(*) || ' ' || max(xmin::text::bigint) FROM pg_description
  UNION ALL SELECT 'namespace ' || count(*) || ' ' || max(xmin::text::bigint) FROM pg_namespace
    WHERE nspname !~ '^pg_(toast_)?temp_'
  UNION ALL SELECT concat_ws(' ', 'class', oid, relname, relnamespace, relowner, relkind, relnatts, relchecks,
                             relhasindex, relhastriggers, relhasrules, relrowsecurity, relpersistence, reloptions,
                             relacl)
    FROM pg_class WHERE relpersistence <> 't'
) AS catalog(part)
"""

# The schema's tables: their oid, their name, whether they hold rows, and their row
# count as last measured (-1: never; migration 015 measures customer_search, empty).
TABLES = """
SELECT c.oid, n.nspname, c.relname, pg_relation_size(c.oid) > 0, c.reltuples
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
"""
# Of the given tables, those a test wrote to or measured since they were as given.
WRITTEN = """
SELECT coalesce(array_agg(c.oid ORDER BY c.oid), '{}')
FROM pg_class c JOIN unnest(%s::oid[], %s::real[]) AS was(oid, reltuples) ON was.oid = c.oid
WHERE pg_relation_size(c.oid) > 0 OR c.reltuples <> was.reltuples
"""
FORGET_STATISTICS = """
DELETE FROM pg_statistic
WHERE starelid = ANY(%(tables)s::oid[]) OR starelid IN (SELECT indexrelid FROM pg_index WHERE indrelid = ANY(%(tables)s::oid[]))
"""
SEQUENCES = """
SELECT s.seqrelid, s.seqstart, pg_sequence_last_value(s.seqrelid)
FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public'
"""
RESTORE_SEQUENCE = "SELECT setval(%s::oid::regclass, %s, %s)"
OTHER_SESSIONS = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                  "AND backend_type = 'client backend' AND pid <> pg_backend_pid()")


class WorkerDatabase:
    """One database of the migrated template for this pytest process; `take()` before each
    test returns its name, emptied, or a fresh copy when emptying cannot make it new."""

    def __init__(self, server_url: str, template: str) -> None:
        self.server_url, self.template = server_url, template
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="fresh-databases")
        self.spare = self.thread.submit(self._copy)
        self.name: str | None = None

    def _copy(self) -> str:
        name = f"csvimp_test_{uuid.uuid4().hex[:12]}"
        recreate_database(self.server_url, name, template=self.template)
        return name

    def _connect(self):
        assert self.name is not None
        conn = psycopg2.connect(with_database(self.server_url, self.name), application_name="tests: emptying")
        conn.autocommit = True
        return contextlib.closing(conn)

    def take(self) -> str:
        if self.name is None or not self._empty():
            self._replace()
        assert self.name is not None
        return self.name

    def _replace(self) -> None:
        """The spare copy in place of this one, and the next spare made on the thread."""
        if self.name is not None:
            self.thread.submit(drop_database, self.server_url, self.name)
        self.name = self.spare.result()
        self.spare = self.thread.submit(self._copy)
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute(TABLES)
            found = cur.fetchall()
            self.tables = {oid: sql.Identifier(schema, name) for oid, schema, name, _, _ in found}
            self.seeded = [oid for oid, _, _, holds_rows, _ in found if holds_rows]
            self.measured = {oid: reltuples for oid, _, _, holds_rows, reltuples in found if not holds_rows}
            cur.execute(SEQUENCES)
            self.sequences = cur.fetchall()
            self.fingerprint = self._fingerprint(cur)

    def _fingerprint(self, cur) -> tuple:
        """The catalogs' fingerprint, and what the tables the migrations wrote to hold."""
        cur.execute(CATALOGS)
        fingerprint = [cur.fetchone()[0]]
        for oid in self.seeded:
            cur.execute(sql.SQL("SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {} t")
                        .format(self.tables[oid]))
            fingerprint.append(cur.fetchone()[0])
        return tuple(fingerprint)

    def _empty(self) -> bool:
        """Empty the database as a fresh copy is; False when that cannot be done."""
        with self._connect() as conn, conn.cursor() as cur:
            if not self._others_gone(cur) or self._fingerprint(cur) != self.fingerprint:
                return False
            cur.execute(WRITTEN, (list(self.measured), list(self.measured.values())))
            written = cur.fetchone()[0]
            conn.autocommit = False
            with conn:  # one transaction
                for oid in written:
                    # One at a time: a table's TRUNCATE trigger may empty another of the list.
                    cur.execute(sql.SQL("TRUNCATE {} CASCADE").format(self.tables[oid]))
                cur.execute(FORGET_STATISTICS, {"tables": written})
                for oid, start, last in self.sequences:
                    cur.execute(RESTORE_SEQUENCE, (oid, start if last is None else last, last is not None))
            conn.autocommit = True
            for oid in written:
                if self.measured[oid] >= 0:  # measured by a migration: measured again, empty
                    cur.execute(sql.SQL("ANALYZE {}").format(self.tables[oid]))
            cur.execute("SELECT pg_stat_reset()")
        return True

    def _others_gone(self, cur, timeout: float = 1) -> bool:
        """True once no session of an earlier test is left. Those closing get a second; one
        open after that belongs to something the test left running (a runner's thread, a
        server), which would reconnect into the next test's data: the database is
        replaced instead, and dropped with them."""
        deadline = time.monotonic() + timeout
        while True:
            cur.execute(OTHER_SESSIONS)
            if not cur.fetchone()[0]:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)

    def close(self) -> None:
        if self.name is not None:
            self.thread.submit(drop_database, self.server_url, self.name)
        self.thread.submit(drop_database, self.server_url, self.spare.result())
        self.thread.shutdown(wait=True)
