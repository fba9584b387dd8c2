"""One batch, one transaction: rows, rejects, checkpoint and NOTIFY commit together.

Runs in a thread on a plain psycopg2 connection, because aiopg cannot run COPY.
New customers go straight into the table by COPY (the cheap path a first import
takes); customers that exist already go through a temporary stage and one
INSERT ... ON CONFLICT, which skips rows edited by hand.
"""
from __future__ import annotations

import dataclasses
import io
import json

import psycopg2
import psycopg2.errors
from psycopg2.extras import execute_values

from ..sqlfiles import queries
from .parse import Batch

SQL = queries("import_writer")
COPY_BUFFER = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Written:
    status: str          # the job's status after the commit
    job: dict            # the job as the API shows it


class CheckpointMoved(Exception):
    """The job's checkpoint is not where this batch started: someone else wrote it."""


def connect(database_url: str, application_name: str):
    return psycopg2.connect(database_url, application_name=application_name)


def prepare_session(conn, batch_bytes: int) -> None:
    """What the batch transactions need, set up once the job is ours."""
    with conn.cursor() as cur:
        # Safe here, and it spares a WAL flush per batch: rows and checkpoint commit together,
        # so a database crash can only lose both, and the job redoes them from the older one.
        cur.execute(SQL["async_commit"])
        # The search table's triggers see a batch's rows as a transition table, kept in
        # work_mem; at the default 4 MB every batch went through a temporary file.
        cur.execute(SQL["batch_memory"], {"kilobytes": max(4096, 3 * batch_bytes // 1024)})
        cur.execute(SQL["create_stage"])
    conn.commit()


def write_batch(conn, job_id: int, worker: str, batch: Batch, present: tuple[str, ...],
                reject_limit: int, dry_run: bool = False) -> Written:
    """Write one batch and its checkpoint in one transaction. Blocking: call from a thread.

    A dry run counts as the write would, and rolls the customers back before the checkpoint.
    """
    try:
        return _write(conn, job_id, worker, batch, present, reject_limit, direct=True, dry_run=dry_run)
    except psycopg2.errors.UniqueViolation:
        # A customer created by someone else between our look-up and our COPY:
        # do the whole batch again through the stage, which takes conflicts in stride.
        conn.rollback()
        return _write(conn, job_id, worker, batch, present, reject_limit, direct=False, dry_run=dry_run)
    except BaseException:
        if not conn.closed:
            conn.rollback()
        raise


def _write(conn, job_id: int, worker: str, batch: Batch, present, reject_limit: int, *,
           direct: bool, dry_run: bool) -> Written:
    counts = {"inserted": 0, "updated": 0, "skipped_manual": 0}
    skipped_ids: set[str] = set()
    with conn.cursor() as cur:
        if dry_run:
            cur.execute(SQL["dry_run_begin"])
        existing: set[str] = set()
        if not direct:
            existing = set(batch.ids)
        elif batch.ids:
            cur.execute(SQL["existing_ids"], {"ids": batch.ids})
            existing = {row[0] for row in cur.fetchall()}
        new_lines = [line for cid, line in zip(batch.ids, batch.lines) if cid not in existing]
        old_lines = [line for cid, line in zip(batch.ids, batch.lines) if cid in existing]
        if new_lines:
            cur.copy_expert(SQL["copy_customers"], _payload(new_lines), size=COPY_BUFFER)
            counts["inserted"] += len(new_lines)
        if old_lines:
            cur.copy_expert(SQL["copy_stage"], _payload(old_lines), size=COPY_BUFFER)
            cur.execute(SQL["upsert_from_stage"], {"present": list(present)})
            written = cur.fetchall()
            for _, inserted in written:
                counts["inserted" if inserted else "updated"] += 1
            counts["skipped_manual"] += len(old_lines) - len(written)
            if len(written) < len(old_lines):
                skipped_ids = existing - {cid for cid, _ in written}
        # A Customer Id repeated within the batch: the repeats found it existing.
        for cid, extra in batch.repeats.items():
            counts["skipped_manual" if cid in skipped_ids else "updated"] += extra
        if dry_run:
            cur.execute(SQL["dry_run_undo"])
        if batch.rejects:
            execute_values(cur, SQL["insert_rejects"],
                           [(job_id, line, offset, reason, raw) for line, offset, reason, raw in batch.rejects])
        cur.execute(SQL["checkpoint"], {
            "job_id": job_id, "worker": worker,
            "start_offset": batch.start_offset, "end_offset": batch.end_offset, "end_line": batch.end_line,
            "rejected": len(batch.rejects), "recent": json.dumps(batch.recent),
            "reject_limit": reject_limit, "eof": batch.eof, **counts,
        })
        row = cur.fetchone()
        if row is None:
            cur.execute(SQL["job_status"], {"job_id": job_id})
            row = cur.fetchone()
            conn.rollback()
            if row is not None and row[0] != "running":
                # Paused or cancelled while this batch was on its way: the control's answer
                # stays the job's last word, and a resume parses the batch again.
                return Written(status=row[0], job=row[1])
            raise CheckpointMoved(f"job {job_id} is no longer at byte {batch.start_offset}")
    conn.commit()
    return Written(status=row[0], job=row[1])


def _payload(lines: list[bytes]) -> io.BytesIO:
    return io.BytesIO(b"".join(lines))
