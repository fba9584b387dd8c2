-- A dry run's batch (server/importer/dry_run.py): counted, not written.

-- name: count_batch
-- What the import's writer (import_writer.sql) would do with each distinct
-- Customer Id of the batch: skip a customer edited by hand; judge one this
-- dry run has counted as inserted or updated by the digest of the line that
-- would have written it (import_dry_run_inserted, sql/025_*): the same digest
-- is unchanged, another updated, as the import judges it against what its
-- earlier batch wrote; judge one in the table by its stored values (the
-- columns the file has): equal is unchanged, else updated; insert any other.
-- Each id counted inserted or updated is remembered with its line's digest.
-- `extra`: the id's repeats within the batch, which find it existing;
-- `same`: those of them whose values equal the occurrence before them, which
-- change nothing. No customer, no search row and no sequence value is touched.
WITH batch AS (
    SELECT customer_id, digest, extra, same
    FROM unnest(%(ids)s::text[], %(digests)s::bigint[], %(extra)s::int[], %(same)s::int[])
         AS b (customer_id, digest, extra, same)
), counted AS (
    SELECT b.customer_id, b.digest, b.extra, b.same,
           CASE WHEN c.updated_manually_at IS NOT NULL THEN 'skipped_manual'
                WHEN r.customer_id IS NOT NULL
                    THEN CASE WHEN r.digest = b.digest THEN 'unchanged' ELSE 'updated' END
                WHEN c.id IS NULL THEN 'inserted'
                WHEN customer_changes(to_jsonb(c), to_jsonb(c) || (
                         SELECT jsonb_object_agg(key, value) FROM jsonb_each(to_jsonb(s))
                         WHERE key = ANY(%(present)s))) = '{}' THEN 'unchanged'
                ELSE 'updated' END AS outcome
    FROM batch b LEFT JOIN customers c ON c.customer_id = b.customer_id
                 LEFT JOIN import_stage s ON s.customer_id = b.customer_id
                 LEFT JOIN import_dry_run_inserted r ON r.job_id = %(job_id)s AND r.customer_id = b.customer_id
), remembered AS (
    INSERT INTO import_dry_run_inserted AS r (job_id, customer_id, digest)
    SELECT %(job_id)s, customer_id, digest FROM counted WHERE outcome IN ('inserted', 'updated')
    ON CONFLICT (job_id, customer_id) DO UPDATE SET digest = excluded.digest
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
