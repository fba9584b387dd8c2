-- Import jobs: their life cycle and what the API shows of them.

-- name: create
-- One import at a time, and a refused one spends no job id. While a job is
-- active the new row takes that job's id, so the primary key refuses it (a
-- unique violation, as the one-active index would give) before the identity
-- is drawn: COALESCE evaluates nextval only when no job is active. Two
-- creates that race past the look both draw an id; the one-active index
-- refuses the second.
INSERT INTO import_jobs (id, filename, path, bytes_total, created_by, options) OVERRIDING SYSTEM VALUE
SELECT coalesce((SELECT id FROM import_jobs WHERE status IN ('queued', 'running', 'paused')),
                nextval(pg_get_serial_sequence('import_jobs', 'id'))),
       %(filename)s, %(path)s, %(bytes_total)s, %(created_by)s, %(options)s
RETURNING import_job_json(import_jobs.*)

-- name: active
SELECT id, path, status, worker, import_job_json(j) FROM import_jobs j
WHERE status IN ('queued', 'running', 'paused')

-- name: current
-- The active job, or else the latest one.
SELECT import_job_json(j) FROM import_jobs j
ORDER BY status IN ('queued', 'running', 'paused') DESC, id DESC
LIMIT 1

-- name: by_id
SELECT import_job_json(j) FROM import_jobs j WHERE id = %(id)s

-- name: page
SELECT import_job_json(j) FROM import_jobs j
WHERE %(before)s::bigint IS NULL OR id < %(before)s
ORDER BY id DESC
LIMIT %(limit)s

-- name: transition
-- Pause, resume and cancel: one atomic step from the allowed statuses.
-- A resumed job is anyone's to take. A process that runs a paused or
-- cancelled job clears the worker at its next commit; if no process holds the
-- job's lock (see try_lock), its runner died and nobody will.
UPDATE import_jobs SET
    status = %(to)s,
    finished_at = CASE WHEN %(to)s = 'cancelled' THEN now() ELSE finished_at END,
    worker = CASE WHEN %(to)s <> 'running' AND import_job_has_runner(import_jobs.id) THEN worker END
WHERE id = %(id)s AND status = ANY(%(from)s)
RETURNING import_job_json(import_jobs.*)

-- name: recent
SELECT recent FROM import_jobs WHERE id = %(id)s

-- name: file_header
-- The header line as found in the file, and how the file was read (an undo read none).
SELECT columns, options, kind FROM import_jobs WHERE id = %(id)s

-- name: rejects_page
SELECT line_no, byte_offset, reason, raw FROM import_rejects
WHERE job_id = %(id)s AND line_no > %(after)s
ORDER BY line_no
LIMIT %(limit)s

-- name: next_claimable
-- A job nobody runs: queued, or running without a live runner (nobody holds its lock).
SELECT id FROM import_jobs
WHERE status IN ('queued', 'running') AND NOT import_job_has_runner(id)
ORDER BY id LIMIT 1

-- name: try_lock
SELECT pg_try_advisory_lock(7342, import_job_lock_key(%(id)s))

-- name: runner_alive
SELECT import_job_has_runner(%(id)s)

-- name: status
SELECT status, import_job_json(j) FROM import_jobs j WHERE id = %(id)s

-- name: start_run
UPDATE import_jobs SET
    status = 'running',
    worker = %(worker)s,
    started_at = coalesce(started_at, now()),
    run_started_at = clock_timestamp(),
    run_started_bytes = bytes_done,
    run_started_rows = rows_done
WHERE id = %(id)s AND status IN ('queued', 'running')
RETURNING path, data_offset, bytes_done, line_no, fingerprint, rejected, options, kind, undoes

-- name: forget_worker
-- Claimed, but paused or ended before this run could start: whoever the job
-- still names (a process that died) does not run it, and the lock says nobody
-- else does.
UPDATE import_jobs SET worker = NULL
WHERE id = %(id)s AND status NOT IN ('queued', 'running') AND worker IS NOT NULL

-- name: set_header
UPDATE import_jobs SET
    data_offset = %(data_offset)s,
    bytes_done = %(data_offset)s,
    run_started_bytes = %(data_offset)s,
    line_no = %(data_line)s,
    bytes_total = %(bytes_total)s,
    columns = %(columns)s,
    unknown_columns = %(unknown)s,
    fingerprint = %(fingerprint)s
WHERE id = %(id)s AND data_offset IS NULL

-- name: fail
UPDATE import_jobs SET status = 'failed', error = %(error)s, finished_at = now(), worker = NULL
WHERE id = %(id)s AND status IN ('queued', 'running', 'paused')
RETURNING import_job_json(import_jobs.*)

-- name: release
-- A run that ends while its job still runs (shutdown, lost connection): the job
-- waits to be taken over. Every other end already cleared the worker.
UPDATE import_jobs SET worker = NULL WHERE id = %(id)s AND worker = %(worker)s

-- name: listen_events
-- The channel the import_jobs trigger notifies on every committed change.
LISTEN import_events

-- name: analyze_customers
-- The columns that plans filter, sort or join on; the wide text ones (about,
-- website, phones...) cost most of a whole-table ANALYZE and steer no plan.
ANALYZE customers (id, customer_id, updated_at, import_job_id, updated_manually_at), customer_search

-- name: reject_reasons
-- The rejects of a job grouped by what went wrong. A reason may quote the
-- row's own value (Subscription Date '02/31/2023' ...); the quoted part is
-- replaced by an ellipsis so rows that failed the same way count together.
-- The job's rejects are read by the primary key's prefix.
SELECT regexp_replace(reason, '''[^'']*''|"[^"]*"', '…', 'g') AS kind,
       count(*) AS rows,
       min(line_no) AS first_line
FROM import_rejects
WHERE job_id = %(id)s
GROUP BY kind
ORDER BY rows DESC, kind
LIMIT %(limit)s

-- name: ranges
-- The job's range plan (sql/021_*), in file order.
SELECT start_offset, end_offset, first_line, done_offset, done_line, done FROM import_ranges
WHERE job_id = %(id)s ORDER BY start_offset

-- name: add_range
INSERT INTO import_ranges (job_id, start_offset, end_offset, first_line, done_offset, done_line)
VALUES (%(id)s, %(start_offset)s, %(end_offset)s, %(first_line)s, %(done_offset)s, %(done_line)s)
ON CONFLICT DO NOTHING
