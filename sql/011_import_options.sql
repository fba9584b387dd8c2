-- Files as they come: the effective encoding, delimiter, date layout, column
-- mapping and dry-run flag of a job, as detected or chosen when it was created.
-- A resume reads them from here, so a job never changes its mind half-way.

ALTER TABLE import_jobs ADD COLUMN options jsonb NOT NULL DEFAULT '{}';

-- The job JSON gains options; wrapping keeps the fields earlier migrations gave it.
ALTER FUNCTION import_job_json(import_jobs) RENAME TO import_job_json_before_011;
CREATE FUNCTION import_job_json(j import_jobs) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT import_job_json_before_011(j) || jsonb_build_object('options', j.options)
$$;
