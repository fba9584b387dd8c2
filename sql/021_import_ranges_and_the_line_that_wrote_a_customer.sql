-- Parallel import pipelines (docs/design.md, "The pipelines").
--
-- A job's file is cut into record-aligned byte ranges once, when the job
-- first runs; each range is read by one pipeline at a time and has its own
-- checkpoint (done_offset, done_line), committed with the rows of each of its
-- batches. The plan is in the database, not in a process: a resume with any
-- number of workers, on any host, goes on from exactly the same places. A job
-- from before this migration gets a plan of one range from its checkpoint on.
-- import_jobs is not distributed on Citus; neither is this table, so its
-- foreign key stays local.
CREATE TABLE import_ranges (
    job_id       bigint NOT NULL REFERENCES import_jobs (id) ON DELETE CASCADE,
    start_offset bigint NOT NULL,
    end_offset   bigint NOT NULL,
    first_line   bigint NOT NULL,
    done_offset  bigint NOT NULL,
    done_line    bigint NOT NULL,
    done         boolean NOT NULL DEFAULT false,
    PRIMARY KEY (job_id, start_offset),
    CHECK (start_offset <= done_offset AND done_offset <= end_offset)
);

-- The line of the import's file that last wrote the customer. Pipelines write
-- their ranges in any order; an upsert leaves a customer alone when the same
-- job already wrote it from a later line, so the last occurrence in the file
-- wins as it does when the file is read from top to bottom. A plain column
-- checked by the upsert itself: no trigger, nothing across shards.
ALTER TABLE customers ADD COLUMN import_line bigint;
