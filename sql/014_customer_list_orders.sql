-- The customer list's orders and filters as keyset scans, none of them a sort
-- of the whole table. "Newest" needs no index of its own: ids are given out
-- in creation order, so it is the primary key read backwards.

-- Recently updated: (updated_at, id) read backwards from the cursor.
CREATE INDEX customers_updated_at_id ON customers (updated_at, id);

-- "From import N": the rows a job last wrote, in id order.
CREATE INDEX customers_import_job_id_id ON customers (import_job_id, id);

-- "Edited by hand": few rows among millions, so a small partial index.
CREATE INDEX customers_edited_by_hand ON customers (id) WHERE updated_manually_at IS NOT NULL;
