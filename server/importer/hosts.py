"""Several hosts on one database: a job goes to a process that can see its file.

An upload is written to the disk of the host that received it (IMPORT_DIR
need not be shared), and a CLI import reads a file on its own host; yet any
process may claim a job. A process that cannot see the file gives the job
back untouched, so that the process that can (it polls too) takes it. Only
when no process has seen the file for IMPORT_FILE_WAIT_SECONDS does a
claimant go on, and the engine fails the job: the file is no longer there.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from ..sqlfiles import queries

log = logging.getLogger(__name__)
SQL = queries("job_files")


def leave_to_another_host(cur, job_id: int, wait_seconds: float) -> bool:
    """Inside the claim, before the run starts: True when this process must give the job back.

    Blocking (a stat and queries): called on the job's own thread.
    """
    cur.execute(SQL["path"], {"id": job_id})
    row = cur.fetchone()
    if row is None:
        return False  # not runnable: the claim finds nothing to start
    path = Path(row[0])
    if os.path.exists(path):
        cur.execute(SQL["file_seen"], {"id": job_id})
        return False
    cur.execute(SQL["file_unseen"], {"id": job_id})
    unseen_for = float(cur.fetchone()[0] or 0)
    if unseen_for >= wait_seconds:
        return False  # nobody has it: the engine fails the job ("no longer there")
    log.info("import job %s: its file %s is not on this host; leaving it to a process that can read it "
             "(unseen for %.0fs of IMPORT_FILE_WAIT_SECONDS=%.0f)", job_id, path.name, unseen_for, wait_seconds,
             extra={"event": "job_left", "job_id": job_id, "file": path.name, "unseen_seconds": unseen_for})
    return True
