-- The last occurrence in the file wins, also when it changes nothing
-- (docs/design.md, "The pipelines").
--
-- A customer the job leaves as it is (its line equals the stored values)
-- leaves no mark on its row. Were an earlier line of the same customer, in a
-- range still being read, written after that, it would win. So a batch whose
-- range has an earlier range still open notes the customers it read and did
-- not write, with their lines, in the transaction of its checkpoint; a batch
-- that writes a customer from an earlier line finds the note and leaves the
-- customer alone. Notes go as soon as every earlier range is done. Like
-- import_ranges, a table of the job's, never distributed on Citus.
CREATE TABLE import_seen (
    job_id       bigint NOT NULL REFERENCES import_jobs (id) ON DELETE CASCADE,
    range_start  bigint NOT NULL,
    batch_start  bigint NOT NULL,
    customer_ids text[] NOT NULL,
    lines        bigint[] NOT NULL,
    PRIMARY KEY (job_id, range_start, batch_start)
);
