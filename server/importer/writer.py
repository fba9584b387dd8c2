"""One batch, one transaction: rows, rejects, checkpoint and NOTIFY commit together.

Runs in a thread on a plain psycopg2 connection, because aiopg cannot run COPY.
New customers go straight into the table by COPY (the cheap path a first import
takes); customers that exist already go through a temporary stage and one
INSERT ... ON CONFLICT, which skips rows edited by hand.

The batch writes its customers' search rows (customer_search) itself, in the
same transaction; the row triggers that keep the table for every other writer
stand aside for this session (sql/013_*). When an import will add a large
share of the table, the trigram index is dropped after the first batch and
built again in bulk in the transaction that ends the job (docs/scaling.md):
search stays right meanwhile, walking the table instead of asking the index.
"""
from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable
from typing import Any

import psycopg2
import psycopg2.errors
from psycopg2.extras import execute_values

from ..sqlfiles import queries
from .header import CUSTOMER_COLUMNS
from .parse import Batch

SQL = queries("import_writer")
COPY_BUFFER = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Written:
    status: str          # the job's status after the commit
    job: dict            # the job as the API shows it
    inserted: int = 0    # new customers in this batch


class CheckpointMoved(Exception):
    """The range's checkpoint is not where this batch started: someone else wrote it."""


class LaterLineClash(Exception):
    """Another pipeline's batch and this one met on a customer: the later line must win, so this batch goes again."""


class WrittenMeanwhile(Exception):
    """Someone else deleted or wrote a customer between the batch's read of it and its write.

    The batch goes again and judges the customer by what is stored now: a
    deleted one is inserted (the file is the later writer, as it would be had
    the delete come a moment earlier), a changed one gets the true old values
    in its history.
    """


# Another pipeline (or person) writing the same customer at the same time: the batch
# again, all through the stage (its ON CONFLICT and line check take either order in stride).
_CLASHES = (psycopg2.errors.UniqueViolation, psycopg2.errors.DeadlockDetected,
            psycopg2.errors.SerializationFailure, LaterLineClash, WrittenMeanwhile)
CLASH_ATTEMPTS = 5


def prepare_session(conn, batch_bytes: int) -> None:
    """What the batch transactions need, set up once the job is ours."""
    with conn.cursor() as cur:
        # Safe here, and it spares a WAL flush per batch: rows and checkpoint commit together,
        # so a database crash can only lose both, and the job redoes them from the older one.
        cur.execute(SQL["async_commit"])
        # The upsert's stage and the trigram index's pending list are sorted and merged
        # in work_mem; at the default 4 MB a batch went through temporary files.
        cur.execute(SQL["batch_memory"], {"kilobytes": max(4096, 3 * batch_bytes // 1024)})
        cur.execute(SQL["search_kept_by_writer"])
        cur.execute(SQL["history_kept_by_writer"])
        cur.execute(SQL["create_stage"])
    conn.commit()


def write_batch(conn, job_id: int, worker: str, batch: Batch, present: tuple[str, ...],
                reject_limit: int, build_kilobytes: int, assume_new: bool = False, *, range_start: int) -> Written:
    """Write one batch and its checkpoint in one transaction. Blocking: call from a thread.

    `assume_new` (the batch before held only new customers): copy the batch
    without looking its ids up first, the way a first import goes fastest.
    A batch that ends the job also builds the trigram index if it is missing
    (`build_kilobytes` of maintenance_work_mem), before the job's end commits.
    A dry run counts instead (dry_run.py). `range_start`: the range of the job's
    plan this batch belongs to, whose checkpoint commits with it.
    """
    # An id that exists after all (assumed new, or created by someone else between our
    # look-up and our COPY): the batch again, looked up, then all through the stage,
    # which takes conflicts in stride.
    ways = (("none",) if assume_new else ()) + ("look",) + ("stage",) * CLASH_ATTEMPTS
    try:
        for way in ways[:-1]:
            try:
                return _write(conn, job_id, worker, batch, present, reject_limit, build_kilobytes, way,
                              range_start)
            except _CLASHES:
                conn.rollback()
        return _write(conn, job_id, worker, batch, present, reject_limit, build_kilobytes, ways[-1],
                      range_start)
    except BaseException:
        if not conn.closed:
            conn.rollback()
        raise


def _write(conn, job_id: int, worker: str, batch: Batch, present, reject_limit: int,
           build_kilobytes: int, existing_from: str, range_start: int) -> Written:
    """`existing_from`: which customers exist: "none", "look" them up, or all ("stage")."""
    counts = {"inserted": 0, "updated": 0, "unchanged": 0, "skipped_manual": 0}
    skipped_ids: set[str] = set()
    with conn.cursor() as cur:
        # Asked before the look-up, whose judgement it qualifies; a batch that looks nothing
        # up (all new) leaves no customer as it was and need not ask.
        earlier_open = False
        if existing_from != "none":
            cur.execute(SQL["earlier_range_open"], {"job_id": job_id, "range_start": range_start})
            earlier_open = cur.fetchone()[0]
        later = _LaterLines(job_id, range_start, batch.start_offset, earlier_open=earlier_open)
        # Customer Id -> the digest of the line that wrote it (None: unknown, compare in
        # full) and the row's version then.
        existing: dict[str, tuple[int | None, str | None]] = {}
        if existing_from == "stage":
            existing = dict.fromkeys(batch.ids, (None, None))
        elif existing_from == "look" and batch.ids:
            cur.execute(SQL["existing_ids"], {"ids": batch.ids})
            existing = {cid: (digest, version) for cid, digest, version in cur.fetchall()}
        rows = list(zip(batch.ids, batch.lines, batch.line_nos, batch.digests))
        new = [row for row in rows if row[0] not in existing]
        old = []
        for row in rows:
            if row[0] in existing:
                digest, version = existing[row[0]]
                if digest == row[3]:  # the same values: nothing to write, lock or compare
                    later.left(row[0], row[2], version)
                else:
                    old.append(row)
        counts["unchanged"] += len(rows) - len(new) - len(old)
        if new:
            cur.execute(SQL["new_ids"], {"n": len(new)})
            ids = [row[0] for row in cur.fetchall()]
            copied = io.BytesIO(b"".join(b"%d\t%b\t%d\t%d\n" % (id_, line[:-1], line_no, digest)
                                         for id_, (_, line, line_no, digest) in zip(ids, new)))
            cur.copy_expert(SQL["copy_customers"], copied, size=COPY_BUFFER)
            cur.execute(SQL["search_add"], {"ids": ids})
            cur.execute(SQL["history_inserted"], {"job_id": job_id, "ids": ids,
                                                  "lines": [row[2] for row in new]})
            counts["inserted"] += len(new)
        if old:
            cur.copy_expert(SQL["copy_stage"], payload([row[1] for row in old]), size=COPY_BUFFER)
            old_ids, old_lines = [row[0] for row in old], [row[2] for row in old]
            keys = {"job_id": job_id, "ids": old_ids, "lines": old_lines, "digests": [row[3] for row in old]}
            cur.execute(SQL["insert_from_stage"], keys)
            added = cur.fetchone()[0]
            cur.execute(SQL["update_from_stage"], {**keys, "present": list(present), "range_start": range_start,
                                                   "whole": set(CUSTOMER_COLUMNS) <= set(present)})
            updated, skipped, moved, found, left_ids, left_lines, left_versions = cur.fetchone()
            if found < len(old):  # deleted between the two statements
                raise WrittenMeanwhile
            if moved:  # changed or deleted between the update's read and its row lock
                cur.execute(SQL["written_since"], {"ids": moved})
                if cur.fetchone()[0]:
                    raise WrittenMeanwhile
            skipped_ids = set(skipped) | set(moved)  # those edited by hand meanwhile
            left_alone = set(left_ids)
            later.wrote([(cid, line) for cid, line in zip(old_ids, old_lines) if cid not in left_alone])
            for left in zip(left_ids, left_lines, left_versions):
                later.left(*left)
            counts["inserted"] += added
            counts["updated"] += updated
            counts["skipped_manual"] += len(skipped_ids)
            counts["unchanged"] += len(old) - added - updated - len(skipped_ids)
        # A Customer Id repeated within the batch: each repeat found it existing, and
        # changed it unless its values equal the occurrence before it.
        for cid, extra in batch.repeats.items():
            if cid in skipped_ids:
                counts["skipped_manual"] += extra
            else:
                same = batch.same_repeats.get(cid, 0)
                counts["unchanged"] += same
                counts["updated"] += extra - same
        return checkpoint_batch(conn, cur, job_id, worker, batch, counts, reject_limit, build_kilobytes,
                                at_lock=later.check, range_start=range_start)


class _LaterLines:
    """What keeps the last line of the file winning when pipelines write customers out of order.

    A batch leaves some customers as they were (their lines change nothing) and
    so leaves no mark on them. Under the job's lock, before the checkpoint, it
    goes again when a batch of an earlier line wrote one of them since its
    look-up, or when a later range noted one it wrote (import_seen, sql/024_*);
    and while a range before its own is still being read, it notes them itself.
    """

    def __init__(self, job_id: int, range_start: int, batch_start: int, *, earlier_open: bool):
        self.keys = {"job_id": job_id, "range_start": range_start, "batch_start": batch_start}
        self.earlier_open = earlier_open
        self.left_ids: list[str] = []
        self.left_lines: list[int] = []
        self.left_versions: list[str | None] = []
        self.wrote_ids: list[str] = []
        self.wrote_lines: list[int] = []

    def left(self, customer_id: str, line: int, version: str | None) -> None:
        self.left_ids.append(customer_id)
        self.left_lines.append(line)
        self.left_versions.append(version)

    def wrote(self, written: list[tuple[str, int]]) -> None:
        for customer_id, line in written:
            self.wrote_ids.append(customer_id)
            self.wrote_lines.append(line)

    def check(self, cur) -> None:
        """Under the job's lock: raise LaterLineClash, or note what this batch left as it was."""
        if self.wrote_ids:
            cur.execute(SQL["seen_at_later_line"], {**self.keys, "ids": self.wrote_ids, "lines": self.wrote_lines})
            if cur.fetchone()[0]:
                raise LaterLineClash
        if self.earlier_open and self.left_ids:
            left = {**self.keys, "ids": self.left_ids, "lines": self.left_lines}
            cur.execute(SQL["written_by_earlier_line"], {**left, "versions": self.left_versions})
            if cur.fetchone()[0]:
                raise LaterLineClash
            cur.execute(SQL["note_seen"], left)


def checkpoint_batch(conn, cur, job_id: int, worker: str, batch: Batch, counts: dict[str, int],
                     reject_limit: int, build_kilobytes: int | None,
                     at_end: Callable[[Any], None] | None = None, *, range_start: int,
                     at_lock: Callable[[Any], None] | None = None) -> Written:
    """The batch's rejects, counters and its range's checkpoint, then the commit of its transaction.

    `at_lock` runs on the cursor once the job's row is taken (the checkpoints go
    one at a time from there). The batch that ends the job's last open range
    ends the job: it builds the trigram index if it is missing, unless
    `build_kilobytes` is None (a dry run, which leaves the index as it is), and
    runs `at_end` on its cursor, before the job's end commits.
    """
    # Before the job's row is taken: a wait here must not hold up a pause or cancel.
    if batch.rejects:
        execute_values(cur, SQL["insert_rejects"],
                       [(job_id, line, offset, reason, raw) for line, offset, reason, raw in batch.rejects])
    cur.execute(SQL["lock_job"], {"job_id": job_id})
    row = cur.fetchone()
    if row is None or row[0] != "running":
        cur.execute(SQL["job_status"], {"job_id": job_id})
        row = cur.fetchone()
        conn.rollback()
        if row is not None:
            # Paused or cancelled while this batch was on its way: the control's answer
            # stays the job's last word, and a resume parses the batch again.
            if build_kilobytes is not None:
                build_search_index(conn, build_kilobytes)
            return Written(status=row[0], job=row[1])
        raise CheckpointMoved(f"job {job_id} is gone")
    if at_lock is not None:
        at_lock(cur)
    keys = {"job_id": job_id, "worker": worker, "range_start": range_start,
            "start_offset": batch.start_offset, "end_offset": batch.end_offset,
            "start_line": batch.start_line, "end_line": batch.end_line, "eof": batch.eof}
    cur.execute(SQL["range_checkpoint"], keys)
    ended = cur.fetchone()
    if ended is None:
        conn.rollback()
        raise CheckpointMoved(f"job {job_id}: its range at byte {range_start} is no longer at byte "
                              f"{batch.start_offset}")
    if batch.eof:  # a range done: notes that no range before theirs can use go (sql/024_*)
        cur.execute(SQL["forget_seen"], {"job_id": job_id})
    cur.execute(SQL["checkpoint"], {
        **keys, "eof": ended[0], "rejected": len(batch.rejects), "recent": json.dumps(batch.recent),
        "reject_limit": reject_limit, **counts,
    })
    status, job = cur.fetchone()
    if status != "running":
        # The job ends with this batch: search is whole when it commits.
        if build_kilobytes is not None:
            _build_search_index(cur, build_kilobytes)
        if at_end is not None:
            at_end(cur)
        cur.execute(SQL["finished_now"], {"job_id": job_id})
        job = cur.fetchone()[0]
    conn.commit()
    return Written(status=status, job=job, inserted=counts["inserted"])


def drop_search_index_for(conn, batch: Batch, written: Written, share: float, min_rows: int) -> bool:
    """After a run's first batch: drop the trigram index if the rest of the file is big beside the table.

    The rest is reckoned from the batch: its bytes per row and its share of new
    customers, over the bytes the job has still to read. True when the index is
    gone (the job builds it again as it ends).
    """
    rows = len(batch.ids) + sum(batch.repeats.values()) + len(batch.rejects)
    size = batch.end_offset - batch.start_offset
    rest = written.job["bytes_total"] - written.job["bytes_done"]
    if written.status != "running" or rows == 0 or size <= 0 or rest <= 0 or written.inserted == 0:
        return False
    coming = rest / (size / rows) * (written.inserted / rows)
    try:
        with conn.cursor() as cur:
            cur.execute(SQL["search_rows"])
            present = cur.fetchone()[0]
            if coming < min_rows or coming < share * present:
                conn.rollback()
                return False
            cur.execute(SQL["search_lock_timeout"])
            cur.execute(SQL["search_index_drop"])
        conn.commit()
        return True
    except psycopg2.errors.LockNotAvailable:
        conn.rollback()   # searches held it: keep the index, and pay for it row by row
        return False


def build_search_index(conn, build_kilobytes: int) -> None:
    """The trigram index, if a run dropped it and ended before building it again. Blocking."""
    with conn.cursor() as cur:
        _build_search_index(cur, build_kilobytes)
    conn.commit()


def _build_search_index(cur, build_kilobytes: int) -> None:
    cur.execute(SQL["search_build_memory"], {"kilobytes": build_kilobytes})
    cur.execute(SQL["search_index_build"])


def payload(lines: list[bytes]) -> io.BytesIO:
    return io.BytesIO(b"".join(lines))
