-- 004 meant to skip updates that change only the worker, but it never
-- skipped anything: in a BEFORE trigger NEW.rows_done (a generated column)
-- is still NULL, so NEW and OLD never compared equal. And the idea was wrong:
-- the job JSON shows `worker`, so a change of it is a change people see.
--
-- A finished job now stays as it finished because the batch that finishes
-- it also clears the worker (import_writer.sql, checkpoint); the runner's
-- later hand-back finds nothing of its own to clear. So every update is an
-- event again, as in 001.

CREATE OR REPLACE FUNCTION import_jobs_stamp() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.event_seq := nextval('import_event_seq');
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END
$$;

DROP TRIGGER import_jobs_notify_change ON import_jobs;
DROP TRIGGER import_jobs_notify ON import_jobs;
CREATE TRIGGER import_jobs_notify AFTER INSERT OR UPDATE ON import_jobs
    FOR EACH ROW EXECUTE FUNCTION import_jobs_notify();
