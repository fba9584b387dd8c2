-- Which process runs a job is not part of the job as people see it
-- (import_job_json leaves it out). Yet handing a finished job back
-- (worker = NULL) stamped it like a change: its updated_at moved after it
-- had finished, and one more event followed its last. An update that only
-- changes the worker is no longer an event.

CREATE OR REPLACE FUNCTION import_jobs_stamp() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND to_jsonb(NEW) - 'worker' = to_jsonb(OLD) - 'worker' THEN
        RETURN NEW;
    END IF;
    NEW.event_seq := nextval('import_event_seq');
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END
$$;

-- A trigger's WHEN may only look at OLD for updates: inserts get their own.
DROP TRIGGER import_jobs_notify ON import_jobs;
CREATE TRIGGER import_jobs_notify AFTER INSERT ON import_jobs
    FOR EACH ROW EXECUTE FUNCTION import_jobs_notify();
CREATE TRIGGER import_jobs_notify_change AFTER UPDATE ON import_jobs
    FOR EACH ROW WHEN (NEW.event_seq IS DISTINCT FROM OLD.event_seq)
    EXECUTE FUNCTION import_jobs_notify();
