-- Undoing an import (server/importer/undo.py, docs/history.md): a job of its
-- own that walks the customers the undone job changed, in id order, a slice
-- per transaction, with its checkpoint (the last id done) in the same one.

-- name: undoable
-- The job to undo, with what decides whether it may be: its kind, status and
-- dry-run flag, whether it ended within the kept days, and a finished undo of it.
SELECT j.kind, j.status, coalesce((j.options ->> 'dry_run')::boolean, false),
       j.finished_at IS NOT NULL AND j.finished_at < now() - make_interval(days => %(days)s),
       (SELECT u.id FROM import_jobs u
        WHERE u.kind = 'undo' AND u.undoes = j.id AND u.status = 'completed'
          AND NOT coalesce((u.options ->> 'dry_run')::boolean, false)
        ORDER BY u.id DESC LIMIT 1)
FROM import_jobs j WHERE j.id = %(id)s

-- name: create
-- As jobs.sql's create: one job at a time, and a refused one spends no id.
INSERT INTO import_jobs (id, kind, undoes, filename, path, created_by, options) OVERRIDING SYSTEM VALUE
SELECT coalesce((SELECT id FROM import_jobs WHERE status IN ('queued', 'running', 'paused')),
                nextval(pg_get_serial_sequence('import_jobs', 'id'))),
       'undo', %(undoes)s, 'undo of import ' || %(undoes)s || ' (' || j.filename || ')', '',
       %(created_by)s, jsonb_build_object('dry_run', %(dry_run)s::boolean)
FROM import_jobs j WHERE j.id = %(undoes)s
RETURNING import_job_json(import_jobs.*)

-- name: history_kept_by_writer
-- The undo writes its history itself, set-based (the search rows follow the triggers).
SELECT set_config('csvimp.history_kept_by', 'writer', false)

-- name: begin
-- A first run counts the customers to go through; bytes stand for customers here.
UPDATE import_jobs SET
    data_offset = 0, bytes_done = 0, line_no = 0, run_started_bytes = 0,
    bytes_total = (SELECT count(DISTINCT id) FROM customer_history WHERE job_id = %(undoes)s)
WHERE id = %(id)s AND data_offset IS NULL

-- name: position
SELECT line_no FROM import_jobs WHERE id = %(id)s

-- name: lock_slice
-- The slice's customers, locked before the slice reads them: an edit committed
-- while the slice runs would otherwise be seen by its writes but not by its
-- conflict check (the statement's snapshot), and go unnamed in the rejects.
-- With the rows held, the slice's own snapshot is the last word on them.
SELECT c.id FROM customers c
WHERE c.id IN (SELECT id FROM customer_history WHERE job_id = %(undoes)s AND id > %(after)s
               GROUP BY id ORDER BY id LIMIT %(n)s)
ORDER BY c.id
FOR UPDATE OF c

-- name: slice
-- One slice: each customer the undone job changed, how, and whether anything
-- changed it since (then it is left as it is, and named in the rejects).
-- Restored values are each field's value before the undone job's first change
-- of it. A dry run counts the same and writes only rejects and the checkpoint.
WITH slice AS (
    SELECT id, max(seq) AS last_seq, bool_or(action = 'insert') AS inserted, max(line_no) AS line_no
    FROM customer_history
    WHERE job_id = %(undoes)s AND id > %(after)s
    GROUP BY id ORDER BY id LIMIT %(n)s
), later AS (
    -- Changed since: a later history row, or a hand-edit mark (also one an edit
    -- that changed no value left, which writes no history).
    -- A later import's change that an undo of it took back is none, nor is that
    -- undo's row: so two imports are taken back by undoing the later one first.
    SELECT DISTINCT ON (s.id) s.id, s.line_no, h.at, h.action, h.by_user, h.job_id
    FROM slice s JOIN customer_history h ON h.id = s.id AND h.seq > s.last_seq
    WHERE NOT EXISTS (
        SELECT FROM import_jobs u JOIN customer_history r ON r.id = h.id AND r.job_id = u.id
        WHERE u.kind = 'undo' AND u.undoes <> %(undoes)s AND r.action = 'undo'
          AND ((h.action <> 'undo' AND h.job_id = u.undoes AND r.seq > h.seq)
               OR (h.action = 'undo' AND h.job_id = u.id AND r.seq = h.seq
                   AND EXISTS (SELECT FROM customer_history b
                               WHERE b.id = h.id AND b.job_id = u.undoes AND b.seq > s.last_seq
                                 AND b.seq < h.seq))))
    ORDER BY s.id, h.seq DESC
), conflicts AS (
    SELECT * FROM later
    UNION ALL
    SELECT s.id, s.line_no, c.updated_manually_at, 'update', c.updated_manually_by, NULL
    FROM slice s JOIN customers c ON c.id = s.id
    WHERE c.updated_manually_at IS NOT NULL AND s.id NOT IN (SELECT id FROM later)
), todo AS (
    SELECT s.* FROM slice s WHERE s.id NOT IN (SELECT id FROM conflicts)
), before AS (
    SELECT t.id, jsonb_object_agg(f.key, f.old) AS old, jsonb_object_agg(f.key, jsonb_build_array(f.new, f.old)) AS changes
    FROM todo t CROSS JOIN LATERAL (
        SELECT e.key, (array_agg(e.value -> 0 ORDER BY h.seq))[1] AS old,
               (array_agg(e.value -> 1 ORDER BY h.seq DESC))[1] AS new
        FROM customer_history h CROSS JOIN jsonb_each(h.changes) AS e
        WHERE h.id = t.id AND h.job_id = %(undoes)s
        GROUP BY e.key) AS f
    WHERE NOT t.inserted
    GROUP BY t.id
), removed AS (
    DELETE FROM customers c USING todo t
    WHERE NOT %(dry_run)s AND t.inserted AND c.id = t.id AND c.updated_manually_at IS NULL
    RETURNING c.*
), restored AS (
    UPDATE customers c SET
        first_name = CASE WHEN b.old ? 'first_name' THEN b.old ->> 'first_name' ELSE c.first_name END,
        last_name = CASE WHEN b.old ? 'last_name' THEN b.old ->> 'last_name' ELSE c.last_name END,
        company = CASE WHEN b.old ? 'company' THEN b.old ->> 'company' ELSE c.company END,
        city = CASE WHEN b.old ? 'city' THEN b.old ->> 'city' ELSE c.city END,
        country = CASE WHEN b.old ? 'country' THEN b.old ->> 'country' ELSE c.country END,
        phone_1 = CASE WHEN b.old ? 'phone_1' THEN b.old ->> 'phone_1' ELSE c.phone_1 END,
        phone_2 = CASE WHEN b.old ? 'phone_2' THEN b.old ->> 'phone_2' ELSE c.phone_2 END,
        email = CASE WHEN b.old ? 'email' THEN b.old ->> 'email' ELSE c.email END,
        subscription_date = CASE WHEN b.old ? 'subscription_date'
                                 THEN (b.old ->> 'subscription_date')::date ELSE c.subscription_date END,
        website = CASE WHEN b.old ? 'website' THEN b.old ->> 'website' ELSE c.website END,
        about = CASE WHEN b.old ? 'about' THEN b.old ->> 'about' ELSE c.about END,
        import_job_id = %(job_id)s,
        import_digest = NULL,  -- no line of a file made these values (sql/023_*)
        updated_at = now()
    FROM before b
    WHERE NOT %(dry_run)s AND c.id = b.id AND c.updated_manually_at IS NULL
    RETURNING c.id
), history AS (
    INSERT INTO customer_history (id, action, job_id, changes)
    SELECT r.id, 'undo', %(job_id)s, customer_changes(to_jsonb(r), '{}') FROM removed r
    UNION ALL
    SELECT b.id, 'undo', %(job_id)s, b.changes FROM restored r JOIN before b USING (id)
), rejects AS (
    -- The customer and the moment quoted, so that reject-reasons groups by who and how.
    INSERT INTO import_rejects (job_id, line_no, byte_offset, reason, raw)
    SELECT %(job_id)s, coalesce(l.line_no, l.id), 0,
           format('customer ''%%s'' was changed after import %%s: %%s by %%s at ''%%s''; left as it is',
                  coalesce(c.customer_id, 'id ' || l.id), %(undoes)s::bigint,
                  CASE WHEN l.action = 'undo' THEN 'undone' ELSE l.action || 'd' END,
                  coalesce(l.by_user, 'job ' || l.job_id, 'another writer'),
                  to_char(l.at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"')),
           convert_to(coalesce(c.customer_id, ''), 'UTF8')
    FROM conflicts l LEFT JOIN customers c ON c.id = l.id
    ON CONFLICT (job_id, line_no) DO NOTHING
)
SELECT (SELECT count(*) FROM slice),
       (SELECT max(id) FROM slice),
       CASE WHEN %(dry_run)s THEN (SELECT count(*) FROM todo WHERE inserted) ELSE (SELECT count(*) FROM removed) END,
       CASE WHEN %(dry_run)s THEN (SELECT count(*) FROM before) ELSE (SELECT count(*) FROM restored) END

-- name: checkpoint
-- Only from the checkpoint this slice started at, and only while the job runs.
UPDATE import_jobs SET
    bytes_done = bytes_done + %(done)s,
    line_no = %(last_id)s,
    deleted = deleted + %(deleted)s,
    updated = updated + %(updated)s,
    rejected = rejected + %(rejected)s,
    status = CASE WHEN %(eof)s THEN 'completed' ELSE status END,
    finished_at = CASE WHEN %(eof)s THEN clock_timestamp() ELSE finished_at END,
    worker = CASE WHEN NOT %(eof)s THEN %(worker)s END
WHERE id = %(job_id)s AND line_no = %(after)s AND status = 'running'
RETURNING status, import_job_json(import_jobs.*)

-- name: job_status
SELECT status, import_job_json(j) FROM import_jobs j WHERE id = %(job_id)s
