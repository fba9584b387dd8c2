-- A NOTIFY payload must stay under 8000 bytes, and the job JSON did not
-- always: a header with many long unknown column names made pg_notify fail,
-- which failed the very UPDATE that would have failed the job, and the job
-- stayed 'running' for good. The notification now carries what identifies
-- the event (the job's id, its event_seq, its status and whether the status
-- changed); each listener reads the job itself (server/events.py).

CREATE OR REPLACE FUNCTION import_jobs_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('import_events', jsonb_build_object(
        'event', CASE WHEN TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM NEW.status
                      THEN 'state' ELSE 'progress' END,
        'id', NEW.id,
        'seq', NEW.event_seq,
        'status', NEW.status)::text);
    RETURN NULL;
END
$$;

-- The key of a job's advisory lock, pg_try_advisory_lock(7342, key): the
-- two-key form takes int4, and id::int broke once ids passed 2^31. Ids that
-- share a key are 2^31 apart; at most one job is active at a time, so two
-- jobs that share a key never both want the lock.
CREATE FUNCTION import_job_lock_key(id bigint) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT (id % 2147483648)::integer $$;

-- Whether a process holds the job's lock, so runs it now (server/importer/runner.py).
CREATE FUNCTION import_job_has_runner(id bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.granted
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid = 7342 AND l.objid::bigint = import_job_lock_key(id) AND l.objsubid = 2)
$$;
