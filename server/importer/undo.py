"""Undoing an import: a job of its own (kind "undo"), run by the same runner.

It walks the customers the undone import changed, as its history rows name
them, in id order, a slice per transaction: it deletes those the import
inserted and gives those it updated back each field's value from before it.
A customer that anything changed since (a person, a later import, another
undo) is left as it is, counted `rejected` and named in the undo's rejects
with who changed it and when. The checkpoint (the last customer id done)
commits with the slice, so a crash, a pause or a cancel leaves the table as
after some whole slices, and a resume goes on from there (docs/history.md).
"""
from __future__ import annotations

import aiopg
import psycopg2.errors

from ..errors import Conflict
from ..sqlfiles import queries
from . import jobs
from .jobs import JobActive, JobNotFound, JobRun
from .writer import CheckpointMoved, Written

SQL = queries("import_undo")


class CannotUndo(Conflict):
    def __init__(self, job_id: int, reason: str):
        super().__init__(f"cannot undo job {job_id}: {reason}")


async def start(pool: aiopg.Pool, job_id: int, *, history_days: int, dry_run: bool = False,
                created_by: str | None = None) -> dict:
    """Queue an undo of `job_id`; the new job. CannotUndo or JobActive (409) when it may not run."""
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(SQL["undoable"], {"id": job_id, "days": history_days})
        row = await cur.fetchone()
        if row is None:
            raise JobNotFound(job_id)
        kind, status, was_dry_run, too_old, undone_by = row
        reason = _why_not(kind, status, was_dry_run, too_old, undone_by, history_days)
        if reason is not None:
            raise CannotUndo(job_id, reason)
        try:
            await cur.execute(SQL["create"], {"undoes": job_id, "created_by": created_by, "dry_run": dry_run})
            return (await cur.fetchone())[0]
        except psycopg2.errors.UniqueViolation:
            pass
    active = await jobs.active(pool)
    if active is None:
        raise CannotUndo(job_id, "another job was starting meanwhile; try again")
    raise JobActive(active[4])


def _why_not(kind: str, status: str, was_dry_run: bool, too_old: bool, undone_by: int | None,
             history_days: int) -> str | None:
    if kind == "undo":
        return "it is an undo; import the file again instead"
    if status in ("queued", "running", "paused"):
        return f"it is {status}"
    if was_dry_run:
        return "it was a dry run, which changed nothing"
    if too_old:
        return f"it ended more than HISTORY_DAYS ({history_days}) days ago; its history is no longer kept"
    if undone_by is not None:
        return f"undo job {undone_by} has undone it already"
    return None


def prepare_session(conn, run: JobRun) -> int:
    """Blocking: the session writes its own history; a first run counts the customers to go
    through. The last customer id done (the checkpoint)."""
    job_id, undoes = run.job_id, run.undoes
    with conn.cursor() as cur:
        cur.execute(SQL["history_kept_by_writer"])
        cur.execute(SQL["begin"], {"id": job_id, "undoes": undoes})
        cur.execute(SQL["position"], {"id": job_id})
        after = cur.fetchone()[0]
    conn.commit()
    return after


def undo_slice(conn, run: JobRun, after: int, size: int) -> tuple[Written, int]:
    """Undo (or count, in a dry run) one slice and commit it with its checkpoint; (written, last id).

    Blocking: call from the job's thread. A job paused or cancelled meanwhile
    rolls the slice back; its status is the answer.
    """
    job_id, worker, undoes, dry_run = run.job_id, run.worker, run.undoes, run.dry_run
    try:
        with conn.cursor() as cur:
            if not dry_run:
                cur.execute(SQL["lock_slice"], {"undoes": undoes, "after": after, "n": size})
            cur.execute(SQL["slice"], {"job_id": job_id, "undoes": undoes, "after": after, "n": size,
                                       "dry_run": dry_run})
            done, last_id, deleted, updated = cur.fetchone()
            cur.execute(SQL["checkpoint"], {
                "job_id": job_id, "worker": worker, "after": after, "last_id": last_id or after,
                "done": done, "deleted": deleted, "updated": updated, "rejected": done - deleted - updated,
                "eof": done < size})
            row = cur.fetchone()
            if row is None:
                conn.rollback()
                cur.execute(SQL["job_status"], {"job_id": job_id})
                row = cur.fetchone()
                conn.rollback()
                if row is None or row[0] == "running":
                    raise CheckpointMoved(f"undo job {job_id} is no longer at customer {after}")
                return Written(status=row[0], job=row[1]), after
        conn.commit()
        return Written(status=row[0], job=row[1]), last_id or after
    except BaseException:
        if not conn.closed:
            conn.rollback()
        raise
