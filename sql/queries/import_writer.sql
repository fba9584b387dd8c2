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
SELECT customer_id FROM customers WHERE customer_id = ANY(%(ids)s)

-- name: copy_customers
COPY customers (id, customer_id, first_name, last_name, company, city, country,
                phone_1, phone_2, email, subscription_date, website, about, import_job_id)
FROM STDIN

-- name: create_stage
CREATE TEMP TABLE IF NOT EXISTS import_stage (
    customer_id text, first_name text, last_name text, company text, city text, country text,
    phone_1 text, phone_2 text, email text, subscription_date date, website text, about text,
    import_job_id bigint
) ON COMMIT DELETE ROWS

-- name: copy_stage
COPY import_stage FROM STDIN

-- name: upsert_from_stage
-- A column the file does not have keeps its value; a hand-edited customer keeps all.
-- Search rows follow, written only where the text changed.
WITH written AS (
    INSERT INTO customers AS c (customer_id, first_name, last_name, company, city, country,
                                phone_1, phone_2, email, subscription_date, website, about,
                                import_job_id)
    SELECT * FROM import_stage
    ON CONFLICT (customer_id) DO UPDATE SET
        first_name = CASE WHEN 'first_name' = ANY(%(present)s) THEN excluded.first_name ELSE c.first_name END,
        last_name = CASE WHEN 'last_name' = ANY(%(present)s) THEN excluded.last_name ELSE c.last_name END,
        company = CASE WHEN 'company' = ANY(%(present)s) THEN excluded.company ELSE c.company END,
        city = CASE WHEN 'city' = ANY(%(present)s) THEN excluded.city ELSE c.city END,
        country = CASE WHEN 'country' = ANY(%(present)s) THEN excluded.country ELSE c.country END,
        phone_1 = CASE WHEN 'phone_1' = ANY(%(present)s) THEN excluded.phone_1 ELSE c.phone_1 END,
        phone_2 = CASE WHEN 'phone_2' = ANY(%(present)s) THEN excluded.phone_2 ELSE c.phone_2 END,
        email = CASE WHEN 'email' = ANY(%(present)s) THEN excluded.email ELSE c.email END,
        subscription_date = CASE WHEN 'subscription_date' = ANY(%(present)s)
                                 THEN excluded.subscription_date ELSE c.subscription_date END,
        website = CASE WHEN 'website' = ANY(%(present)s) THEN excluded.website ELSE c.website END,
        about = CASE WHEN 'about' = ANY(%(present)s) THEN excluded.about ELSE c.about END,
        import_job_id = excluded.import_job_id,
        updated_at = now()
    WHERE c.updated_manually_at IS NULL
    RETURNING customer_id, xmax = 0 AS inserted, id,
              customer_search_doc(first_name, last_name, email, company, city, country) AS doc,
              -- As the statement found it: a row whose text stays is neither written nor locked.
              (SELECT s.doc FROM customer_search s WHERE s.id = c.id) AS old_doc
), search AS (
    INSERT INTO customer_search AS s (id, doc)
    SELECT id, doc FROM written WHERE old_doc IS DISTINCT FROM doc
    ON CONFLICT (id) DO UPDATE SET doc = excluded.doc
)
SELECT customer_id, inserted FROM written

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

-- name: checkpoint
-- Only from the checkpoint this batch started at: a second writer can never count twice.
-- Only while the job runs: once a pause or cancel has answered, its counters are the
-- job's last word, and the batch in flight rolls back (writer.py).
UPDATE import_jobs SET
    bytes_done = %(end_offset)s,
    line_no = %(end_line)s,
    inserted = inserted + %(inserted)s,
    updated = updated + %(updated)s,
    skipped_manual = skipped_manual + %(skipped_manual)s,
    rejected = rejected + %(rejected)s,
    recent = (SELECT coalesce(jsonb_agg(row ORDER BY n), '[]')
              FROM (SELECT row, n FROM jsonb_array_elements(recent || %(recent)s::jsonb)
                                       WITH ORDINALITY AS r (row, n)
                    ORDER BY n DESC LIMIT 20) AS latest),
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
WHERE id = %(job_id)s AND bytes_done = %(start_offset)s AND status = 'running'
RETURNING status, import_job_json(import_jobs.*)

-- name: job_status
SELECT status, import_job_json(j) FROM import_jobs j WHERE id = %(job_id)s
