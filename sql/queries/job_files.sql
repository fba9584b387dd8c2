-- Whether a job's file can be seen by the process that claimed it (server/importer/hosts.py).

-- name: path
-- Only a job the claim would start: any other is the claim's business.
SELECT path FROM import_jobs WHERE id = %(id)s AND status IN ('queued', 'running')

-- name: file_unseen
-- Since when no process has seen the file: the first to miss it starts the clock
-- (one UPDATE, so one event, however often processes look).
WITH marked AS (
    UPDATE import_jobs SET file_unseen_since = now()
    WHERE id = %(id)s AND file_unseen_since IS NULL
    RETURNING file_unseen_since
)
SELECT extract(epoch FROM now() - coalesce((SELECT file_unseen_since FROM marked),
                                            (SELECT file_unseen_since FROM import_jobs WHERE id = %(id)s)))

-- name: file_seen
UPDATE import_jobs SET file_unseen_since = NULL
WHERE id = %(id)s AND file_unseen_since IS NOT NULL
