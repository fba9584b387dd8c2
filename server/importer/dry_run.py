"""A dry run's batch: the counters an import of the file would report, no customer written.

What the import's writer would do with each Customer Id is read from the
customers table (a customer edited by hand is skipped, one whose values the
line would not change is unchanged, any other is updated) and from the ids
this dry run has already counted as inserted or updated
(import_dry_run_inserted, sql/016_* and 025_*), each with the digest of the
line that would have written it: a later batch that meets the id again
judges its line by that digest (the same: unchanged, else updated), as the
import judges it by what its earlier batch wrote. An id in neither is
inserted. Those remembered ids commit with the checkpoint, so a resumed dry
run counts on where it stopped; Python holds one batch's ids only. No
customer, search row, sequence value or index is touched.
"""
from __future__ import annotations

from ..sqlfiles import queries
from .parse import Batch
from .writer import COPY_BUFFER, SQL as WRITER_SQL, Written, checkpoint_batch, payload

SQL = queries("import_dry_run")


def count_batch(conn, job_id: int, worker: str, batch: Batch, present: tuple[str, ...],
                reject_limit: int, *, range_start: int) -> Written:
    """Count one batch and commit its checkpoint. Blocking: call from a thread.

    The batch's rows go to the session's stage (emptied at commit), to be held
    against the stored ones.
    """
    try:
        with conn.cursor() as cur:
            cur.copy_expert(WRITER_SQL["copy_stage"], payload(batch.lines), size=COPY_BUFFER)
            cur.execute(SQL["count_batch"], {
                "job_id": job_id, "ids": batch.ids, "digests": batch.digests,
                "extra": [batch.repeats.get(cid, 0) for cid in batch.ids],
                "same": [batch.same_repeats.get(cid, 0) for cid in batch.ids],
                "present": list(present)})
            inserted, updated, unchanged, skipped_manual = cur.fetchone()
            counts = {"inserted": inserted, "updated": updated, "unchanged": unchanged,
                      "skipped_manual": skipped_manual}
            return checkpoint_batch(conn, cur, job_id, worker, batch, counts, reject_limit, build_kilobytes=None,
                                    at_end=lambda cur: cur.execute(SQL["forget_job"], {"job_id": job_id}),
                                    range_start=range_start)
    except BaseException:
        if not conn.closed:
            conn.rollback()
        raise


def forget_ended(conn) -> None:
    """Drop the remembered ids of jobs that have ended. Blocking."""
    with conn.cursor() as cur:
        cur.execute(SQL["forget_ended"])
    conn.commit()
