-- A dry run's batch (server/importer/dry_run.py): counted, not written.

-- name: count_batch
-- What the import's upsert (import_writer.sql) would do with each distinct
-- Customer Id of the batch: skip a customer edited by hand, update one in the
-- table or one an earlier batch of this dry run counted as inserted, insert
-- any other, which is remembered from now on. A customer in the table whose
-- stored values equal the staged row's (the columns the file has) is
-- unchanged, as the import would count it. `extra`: the id's repeats
-- within the batch, which find it existing; `same`: those of them whose values
-- equal the occurrence before them, which change nothing. No customer, no search row and no
-- sequence value is touched.
WITH batch AS (
    SELECT customer_id, extra, same
    FROM unnest(%(ids)s::text[], %(extra)s::int[], %(same)s::int[]) AS b (customer_id, extra, same)
), found AS (
    SELECT b.customer_id, b.extra, b.same,
           CASE WHEN c.updated_manually_at IS NOT NULL THEN 'skipped_manual'
                WHEN c.id IS NOT NULL AND customer_changes(to_jsonb(c), to_jsonb(c) || (
                         SELECT jsonb_object_agg(key, value) FROM jsonb_each(to_jsonb(s))
                         WHERE key = ANY(%(present)s))) = '{}' THEN 'unchanged'
                WHEN c.id IS NOT NULL THEN 'updated' END AS outcome
    FROM batch b LEFT JOIN customers c ON c.customer_id = b.customer_id
                 LEFT JOIN import_stage s ON s.customer_id = b.customer_id
), inserted AS (
    INSERT INTO import_dry_run_inserted (job_id, customer_id)
    SELECT %(job_id)s, customer_id FROM found WHERE outcome IS NULL
    ON CONFLICT (job_id, customer_id) DO NOTHING
    RETURNING customer_id
), counted AS (
    SELECT coalesce(f.outcome, CASE WHEN i.customer_id IS NULL THEN 'updated' ELSE 'inserted' END) AS outcome,
           f.extra, f.same
    FROM found f LEFT JOIN inserted i ON i.customer_id = f.customer_id
)
SELECT count(*) FILTER (WHERE outcome = 'inserted'),
       count(*) FILTER (WHERE outcome = 'updated')
           + coalesce(sum(extra - same) FILTER (WHERE outcome <> 'skipped_manual'), 0),
       count(*) FILTER (WHERE outcome = 'unchanged') + coalesce(sum(same) FILTER (WHERE outcome <> 'skipped_manual'), 0),
       count(*) FILTER (WHERE outcome = 'skipped_manual') + coalesce(sum(extra) FILTER (WHERE outcome = 'skipped_manual'), 0)
FROM counted

-- name: forget_job
-- In the transaction that ends the job.
DELETE FROM import_dry_run_inserted WHERE job_id = %(job_id)s

-- name: forget_ended
-- The remembered ids of every job that has ended otherwise (cancelled, failed
-- between batches) or is gone, after each job's run.
DELETE FROM import_dry_run_inserted s
WHERE NOT EXISTS (SELECT 1 FROM import_jobs j
                  WHERE j.id = s.job_id AND j.status IN ('queued', 'running', 'paused'))
