-- A dry run (docs/files.md) counts what an import of the file would do
-- without writing a customer. A Customer Id that is not in the table would be
-- inserted by the batch that first has it and updated by every later one;
-- this table holds the ids the dry run has counted as inserted so far, per
-- job. Its rows commit with the job's checkpoint, so a dry run resumed after
-- a crash counts on as it left off; they go when the job ends
-- (server/importer/dry_run.py). Keyed by job first, as import_rejects is, but
-- without its foreign key: a 10 million row dry run pays no probe per id, and
-- the rows of a job that is gone are deleted with those of ended jobs.
CREATE TABLE import_dry_run_inserted (
    job_id      bigint NOT NULL,
    customer_id text NOT NULL,
    PRIMARY KEY (job_id, customer_id)
);
