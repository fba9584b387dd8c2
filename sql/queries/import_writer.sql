-- The batch transaction of the import engine, on the connection that runs COPY.

-- name: async_commit
SET synchronous_commit = off

-- name: batch_memory
SELECT set_config('work_mem', %(kilobytes)s || 'kB', false)

-- name: search_kept_by_writer
-- The row triggers on customers (sql/013_*) stand aside: this session writes
-- customer_search with each batch's own statements.
SELECT set_config('csvimp.search_kept_by', 'writer', false)

-- name: new_ids
-- Ids for the batch's new customers, so that their search rows can be found by key.
-- The sequence by name (the identity column's, sql/001_*): as a constant it is
-- resolved once; pg_get_serial_sequence() in its place ran for every row and
-- took 5 to 15 times as long (25-80 ms a batch of 7,000, seconds per import).
SELECT nextval('customers_id_seq'::regclass) FROM generate_series(1, %(n)s)

-- name: search_add
INSERT INTO customer_search (id, doc)
SELECT id, customer_search_doc(first_name, last_name, email, company, city, country)
FROM customers WHERE id = ANY(%(ids)s)

-- name: search_rows
-- Rows in customer_search now, reckoned as customer_search_ids does (sql/006_*).
SELECT pg_relation_size(c.oid) / current_setting('block_size')::bigint
       * CASE WHEN c.relpages > 0 AND c.reltuples > 0 THEN c.reltuples / c.relpages ELSE 80 END
FROM pg_class c WHERE c.oid = 'customer_search'::regclass

-- name: search_lock_timeout
-- Dropping the index waits for the searches running now, and every new search
-- waits behind it: not for long, else the import keeps the index.
SET LOCAL lock_timeout = '2s'

-- name: search_index_drop
DROP INDEX IF EXISTS customer_search_trgm

-- name: search_build_memory
SELECT set_config('maintenance_work_mem', %(kilobytes)s || 'kB', true)

-- name: search_index_build
-- The index of sql/003_*, as it was; a no-op while it is there.
CREATE INDEX IF NOT EXISTS customer_search_trgm ON customer_search USING gin (doc gin_trgm_ops)

-- name: existing_ids
-- With the digest of the line that wrote each (sql/023_*): a row whose digest
-- equals its line's in this batch is unchanged, and goes no further.
-- Its version (xmin) too: the look-up is what a row left as it is was judged by.
SELECT customer_id, import_digest, xmin::text FROM customers WHERE customer_id = ANY(%(ids)s)

-- name: copy_customers
COPY customers (id, customer_id, first_name, last_name, company, city, country,
                phone_1, phone_2, email, subscription_date, website, about, import_job_id, import_line,
                import_digest)
FROM STDIN

-- name: create_stage
CREATE TEMP TABLE IF NOT EXISTS import_stage (
    customer_id text, first_name text, last_name text, company text, city text, country text,
    phone_1 text, phone_2 text, email text, subscription_date date, website text, about text,
    import_job_id bigint
) ON COMMIT DELETE ROWS

-- name: copy_stage
COPY import_stage FROM STDIN

-- name: history_kept_by_writer
-- The history trigger on customers (sql/019_*) stands aside: each batch writes
-- its customers' history set-based, with the job and the line of the file.
SELECT set_config('csvimp.history_kept_by', 'writer', false)

-- name: history_inserted
-- A customer an import inserted: its values are the file's line, so no before-image.
INSERT INTO customer_history (id, action, job_id, line_no)
SELECT id, 'insert', %(job_id)s, line_no FROM unnest(%(ids)s::bigint[], %(lines)s::bigint[]) AS b (id, line_no)

-- name: insert_from_stage
-- Staged customers that are not in the table (created by someone else since the
-- look-up, or all of them when the batch goes this way): inserted, with their
-- search rows and history. One that appears meanwhile is left to the update.
WITH batch AS (
    SELECT * FROM unnest(%(ids)s::text[], %(lines)s::bigint[], %(digests)s::bigint[])
                  AS b (customer_id, line_no, digest)
), added AS (
    INSERT INTO customers AS c (customer_id, first_name, last_name, company, city, country,
                                phone_1, phone_2, email, subscription_date, website, about,
                                import_job_id, import_line, import_digest)
    SELECT s.*, b.line_no, b.digest FROM import_stage s JOIN batch b ON b.customer_id = s.customer_id
    WHERE NOT EXISTS (SELECT 1 FROM customers o WHERE o.customer_id = s.customer_id)
    ON CONFLICT (customer_id) DO NOTHING
    RETURNING id, customer_id, customer_search_doc(first_name, last_name, email, company, city, country) AS doc
), search AS (
    INSERT INTO customer_search (id, doc) SELECT id, doc FROM added
), history AS (
    INSERT INTO customer_history (id, action, job_id, line_no)
    SELECT a.id, 'insert', %(job_id)s, b.line_no FROM added a JOIN batch b USING (customer_id)
)
SELECT count(*) FROM added

-- name: update_from_stage
-- Only what changes is written: a staged customer whose values (of the columns
-- the file has) equal the stored ones is read, never locked or written, and
-- counts as unchanged. A hand-edited customer keeps all. The changed ones get
-- one history row each with the old and new value of every changed field, and
-- a search row where their text changed. A customer this job already wrote
-- from a later line of its file (another pipeline's range) is superseded: it
-- keeps that line's values, and this occurrence counts as updated if its
-- values differ from them, else as unchanged. Only the version read is
-- written, so the history's old values are the row's: one that another
-- writer changed or deleted since comes back in the third column, and the
-- writer looks again (written_since).
WITH batch AS (
    SELECT * FROM unnest(%(ids)s::text[], %(lines)s::bigint[], %(digests)s::bigint[])
                  AS b (customer_id, line_no, digest)
), seen AS (
    -- Later lines of these customers that a later range read and left as they were.
    SELECT x.customer_id, max(x.line_no) AS line_no
    FROM import_seen u CROSS JOIN unnest(u.customer_ids, u.lines) AS x (customer_id, line_no)
    WHERE u.job_id = %(job_id)s AND u.range_start > %(range_start)s AND x.customer_id = ANY(%(ids)s)
    GROUP BY x.customer_id
), found AS (
    SELECT o.id, s.customer_id, o.updated_manually_at IS NOT NULL AS manual, d.differs,
           coalesce(o.import_job_id = %(job_id)s AND o.import_line > b.line_no, false)
               OR coalesce(seen.line_no > b.line_no, false) AS superseded,
           b.line_no, b.digest, o.xmin,
           -- Before-images only for what changes: an unchanged row costs no JSON.
           CASE WHEN d.differs AND o.updated_manually_at IS NULL
                THEN customer_changes(to_jsonb(o), to_jsonb(o) || (
                         SELECT jsonb_object_agg(key, value) FROM jsonb_each(to_jsonb(s))
                         WHERE key = ANY(%(present)s))) END AS changes
    FROM import_stage s JOIN customers o ON o.customer_id = s.customer_id
    JOIN batch b ON b.customer_id = s.customer_id
    LEFT JOIN seen ON seen.customer_id = s.customer_id
    CROSS JOIN LATERAL (SELECT
           ('first_name' = ANY(%(present)s) AND s.first_name IS DISTINCT FROM o.first_name)
        OR ('last_name' = ANY(%(present)s) AND s.last_name IS DISTINCT FROM o.last_name)
        OR ('company' = ANY(%(present)s) AND s.company IS DISTINCT FROM o.company)
        OR ('city' = ANY(%(present)s) AND s.city IS DISTINCT FROM o.city)
        OR ('country' = ANY(%(present)s) AND s.country IS DISTINCT FROM o.country)
        OR ('phone_1' = ANY(%(present)s) AND s.phone_1 IS DISTINCT FROM o.phone_1)
        OR ('phone_2' = ANY(%(present)s) AND s.phone_2 IS DISTINCT FROM o.phone_2)
        OR ('email' = ANY(%(present)s) AND s.email IS DISTINCT FROM o.email)
        OR ('subscription_date' = ANY(%(present)s) AND s.subscription_date IS DISTINCT FROM o.subscription_date)
        OR ('website' = ANY(%(present)s) AND s.website IS DISTINCT FROM o.website)
        OR ('about' = ANY(%(present)s) AND s.about IS DISTINCT FROM o.about) AS differs) AS d
), changed AS (
    SELECT f.id, f.changes, f.line_no, f.digest, f.xmin AS read_xmin, s.*
    FROM found f JOIN import_stage s USING (customer_id)
    WHERE f.differs AND NOT f.manual AND NOT f.superseded
), written AS (
    UPDATE customers c SET
        first_name = CASE WHEN 'first_name' = ANY(%(present)s) THEN d.first_name ELSE c.first_name END,
        last_name = CASE WHEN 'last_name' = ANY(%(present)s) THEN d.last_name ELSE c.last_name END,
        company = CASE WHEN 'company' = ANY(%(present)s) THEN d.company ELSE c.company END,
        city = CASE WHEN 'city' = ANY(%(present)s) THEN d.city ELSE c.city END,
        country = CASE WHEN 'country' = ANY(%(present)s) THEN d.country ELSE c.country END,
        phone_1 = CASE WHEN 'phone_1' = ANY(%(present)s) THEN d.phone_1 ELSE c.phone_1 END,
        phone_2 = CASE WHEN 'phone_2' = ANY(%(present)s) THEN d.phone_2 ELSE c.phone_2 END,
        email = CASE WHEN 'email' = ANY(%(present)s) THEN d.email ELSE c.email END,
        subscription_date = CASE WHEN 'subscription_date' = ANY(%(present)s)
                                 THEN d.subscription_date ELSE c.subscription_date END,
        website = CASE WHEN 'website' = ANY(%(present)s) THEN d.website ELSE c.website END,
        about = CASE WHEN 'about' = ANY(%(present)s) THEN d.about ELSE c.about END,
        import_job_id = d.import_job_id,
        import_line = d.line_no,
        -- The line's digest is the row's only when the line holds every column.
        import_digest = CASE WHEN %(whole)s THEN d.digest END,
        updated_at = now()
    FROM changed d
    -- The ids as an array as well: the planner takes `changed` for far more rows
    -- than the few a batch has (import_stage has no statistics) and joined
    -- customers to it by reading the whole table, in every batch with a changed
    -- row (0.3 s a batch at 500,000 rows; a re-import with 1 row in 100 changed
    -- took 434 s at 2,000,000, an unchanged one 66 s). By the array, customers
    -- is read through its primary key, for those rows only.
    WHERE c.id = d.id AND c.id = ANY(ARRAY(SELECT id FROM changed))
      -- Only the version read, whose values `changes` holds: a row another writer
      -- changed since (a hand edit, psql, another pipeline) or deleted is left,
      -- and the writer looks again (written_since).
      AND c.xmin = d.read_xmin
    RETURNING c.id, c.customer_id,
              customer_search_doc(c.first_name, c.last_name, c.email, c.company, c.city, c.country) AS doc,
              (SELECT s.doc FROM customer_search s WHERE s.id = c.id) AS old_doc
), search AS (
    INSERT INTO customer_search AS s (id, doc)
    SELECT id, doc FROM written WHERE old_doc IS DISTINCT FROM doc
    ON CONFLICT (id) DO UPDATE SET doc = excluded.doc
), history AS (
    INSERT INTO customer_history (id, action, job_id, line_no, changes)
    SELECT w.id, 'update', %(job_id)s, d.line_no, d.changes
    FROM written w JOIN changed d ON d.id = w.id
)
SELECT (SELECT count(*) FROM written) + (SELECT count(*) FROM found WHERE superseded AND differs AND NOT manual),
       (SELECT coalesce(array_agg(customer_id), '{}') FROM found WHERE manual),
       -- To change, but another writer changed or deleted the row after the read.
       (SELECT coalesce(array_agg(customer_id), '{}') FROM found
        WHERE differs AND NOT manual AND NOT superseded AND id NOT IN (SELECT id FROM written)),
       -- The staged customers found: fewer than were staged when one was deleted
       -- after insert_from_stage looked (the writer sends the batch again).
       (SELECT count(*) FROM found),
       -- The customers read and left as they were, with their lines and versions.
       left_alone.ids, left_alone.lines, left_alone.versions
FROM (SELECT coalesce(array_agg(customer_id), '{}') AS ids, coalesce(array_agg(line_no), '{}') AS lines,
             coalesce(array_agg(xmin::text), '{}') AS versions
      FROM found WHERE id NOT IN (SELECT id FROM written)) AS left_alone

-- name: written_since
-- Whether a customer the update was to change but found changed since its
-- read is anything but edited by hand now: deleted, or written by another
-- writer (psql, another pipeline of this job). The batch then goes again and
-- judges it by what is stored now: inserts it (the file is the later
-- writer), or updates it with the true old values in its history.
SELECT EXISTS (SELECT 1 FROM unnest(%(ids)s::text[]) AS b (customer_id)
               LEFT JOIN customers c ON c.customer_id = b.customer_id
               WHERE c.updated_manually_at IS NULL)

-- name: earlier_range_open
-- Whether a range before this one is still being read: its batches may yet
-- write a customer this batch reads (import_seen, sql/024_*).
SELECT EXISTS (SELECT 1 FROM import_ranges
               WHERE job_id = %(job_id)s AND start_offset < %(range_start)s AND NOT done)

-- name: written_by_earlier_line
-- After the job's lock: a customer this batch left as it was, written since
-- its look-up (its version moved) from an earlier line of the file. The batch
-- goes again, and judges it by what is stored now.
SELECT EXISTS (SELECT 1 FROM unnest(%(ids)s::text[], %(lines)s::bigint[], %(versions)s::text[])
                                 AS b (customer_id, line_no, version)
               JOIN customers c ON c.customer_id = b.customer_id
               WHERE c.import_job_id = %(job_id)s AND c.import_line < b.line_no AND c.xmin::text <> b.version)

-- name: seen_at_later_line
-- After the job's lock: a customer this batch wrote that a later range read
-- at a later line and left as it was. The batch goes again, and leaves it.
SELECT EXISTS (SELECT 1 FROM import_seen u
               CROSS JOIN unnest(u.customer_ids, u.lines) AS x (customer_id, line_no)
               JOIN unnest(%(ids)s::text[], %(lines)s::bigint[]) AS w (customer_id, line_no)
                 ON w.customer_id = x.customer_id AND x.line_no > w.line_no
               WHERE u.job_id = %(job_id)s AND u.range_start > %(range_start)s)

-- name: note_seen
INSERT INTO import_seen (job_id, range_start, batch_start, customer_ids, lines)
VALUES (%(job_id)s, %(range_start)s, %(batch_start)s, %(ids)s, %(lines)s)
ON CONFLICT (job_id, range_start, batch_start)
DO UPDATE SET customer_ids = excluded.customer_ids, lines = excluded.lines

-- name: forget_seen
-- Notes no earlier range needs any more: every range before theirs is done.
DELETE FROM import_seen s
WHERE s.job_id = %(job_id)s
  AND NOT EXISTS (SELECT 1 FROM import_ranges r
                  WHERE r.job_id = %(job_id)s AND NOT r.done AND r.start_offset < s.range_start)

-- name: insert_rejects
INSERT INTO import_rejects (job_id, line_no, byte_offset, reason, raw)
VALUES %s
ON CONFLICT (job_id, line_no) DO NOTHING

-- name: finished_now
-- The job's end as the moment its last transaction is about to commit: the
-- checkpoint's now() is when that transaction began, before the index build
-- it may hold (29 s at 2,000,000 rows).
UPDATE import_jobs SET finished_at = clock_timestamp()
WHERE id = %(job_id)s AND finished_at IS NOT NULL
RETURNING import_job_json(import_jobs.*)

-- name: lock_job
-- Each batch's checkpoint starts by taking the job's row: the pipelines' checkpoints
-- go one at a time, and the statements after this one see every range that
-- committed before it (the last batch of all knows it is the last).
SELECT status FROM import_jobs WHERE id = %(job_id)s FOR UPDATE

-- name: range_checkpoint
-- Only from the checkpoint this batch started at: a second writer can never count twice.
UPDATE import_ranges SET done_offset = %(end_offset)s, done_line = %(end_line)s, done = %(eof)s
WHERE job_id = %(job_id)s AND start_offset = %(range_start)s AND done_offset = %(start_offset)s AND NOT done
RETURNING NOT EXISTS (SELECT 1 FROM import_ranges r
                      WHERE r.job_id = %(job_id)s AND NOT r.done AND r.start_offset <> %(range_start)s)
          AND %(eof)s

-- name: checkpoint
-- The job's counters and its bytes and lines done, summed over its ranges.
-- Only while the job runs: once a pause or cancel has answered, its counters are the
-- job's last word, and the batch in flight rolls back (writer.py).
UPDATE import_jobs SET
    bytes_done = bytes_done + %(end_offset)s - %(start_offset)s,
    line_no = line_no + %(end_line)s - %(start_line)s,
    inserted = inserted + %(inserted)s,
    updated = updated + %(updated)s,
    unchanged = unchanged + %(unchanged)s,
    skipped_manual = skipped_manual + %(skipped_manual)s,
    rejected = rejected + %(rejected)s,
    -- The 20 furthest rows of the file so far, in file order: pipelines commit their
    -- ranges' batches in any order, and a finished job shows the file's last rows.
    recent = (SELECT coalesce(jsonb_agg(row ORDER BY line_no, n), '[]')
              FROM (SELECT row, n, (row ->> 'line_no')::bigint AS line_no
                    FROM jsonb_array_elements(recent || %(recent)s::jsonb) WITH ORDINALITY AS r (row, n)
                    ORDER BY line_no DESC NULLS LAST, n DESC LIMIT 20) AS latest),
    status = CASE WHEN status <> 'running' THEN status
                  WHEN rejected + %(rejected)s > %(reject_limit)s THEN 'failed'
                  WHEN %(eof)s THEN 'completed'
                  ELSE status END,
    error = CASE WHEN status = 'running' AND rejected + %(rejected)s > %(reject_limit)s
                 THEN 'stopped after ' || (rejected + %(rejected)s) || ' rejected rows, more than the limit of '
                      || %(reject_limit)s || '; see the rejects file'
                 ELSE error END,
    finished_at = CASE WHEN status = 'running' AND (%(eof)s OR rejected + %(rejected)s > %(reject_limit)s)
                       THEN now() ELSE finished_at END,
    -- Who runs the job while it runs (a resume during the batch cleared it);
    -- nobody once this batch leaves it finished, paused or cancelled, as the
    -- engine then stops.
    worker = CASE WHEN status = 'running' AND NOT %(eof)s AND rejected + %(rejected)s <= %(reject_limit)s
                  THEN %(worker)s END
WHERE id = %(job_id)s AND status = 'running'
RETURNING status, import_job_json(import_jobs.*)

-- name: job_status
SELECT status, import_job_json(j) FROM import_jobs j WHERE id = %(job_id)s
