-- History, undo, and a re-import that writes only what changed (docs/history.md).

-- A row whose values equal the stored ones is not written: it counts as
-- `unchanged`. An undo is a job too (kind 'undo', undoes the job it takes
-- back); its `deleted` counts the customers it removed. rows_done is their
-- sum, so the generated column is made again (import_jobs is small).
ALTER TABLE import_jobs
    ADD COLUMN unchanged bigint NOT NULL DEFAULT 0,
    ADD COLUMN deleted bigint NOT NULL DEFAULT 0,
    ADD COLUMN kind text NOT NULL DEFAULT 'import' CHECK (kind IN ('import', 'undo')),
    ADD COLUMN undoes bigint;
ALTER TABLE import_jobs DROP COLUMN rows_done;
ALTER TABLE import_jobs ADD COLUMN rows_done bigint
    GENERATED ALWAYS AS (inserted + updated + unchanged + deleted + skipped_manual + rejected) STORED;

ALTER FUNCTION import_job_json(import_jobs) RENAME TO import_job_json_before_019;
CREATE FUNCTION import_job_json(j import_jobs) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT import_job_json_before_019(j) || jsonb_build_object(
        'unchanged', j.unchanged, 'deleted', j.deleted, 'kind', j.kind, 'undoes', j.undoes)
$$;

-- Every change of a customer: which, when, by what. `id` is the customer's id
-- (the table is distributed and co-located with customers by it on Citus);
-- no foreign key, neither to customers (a deleted customer's history stays
-- readable) nor to import_jobs (a distributed table cannot have one to a
-- local table without making it a reference table). `changes` holds
-- {"field": [old, new]}; an insert by an import holds none (job and line say
-- where its values are), so a first import pays one narrow row per customer.
CREATE TABLE customer_history (
    id      bigint NOT NULL,
    seq     bigint GENERATED ALWAYS AS IDENTITY,
    at      timestamptz NOT NULL DEFAULT now(),
    action  text NOT NULL CHECK (action IN ('insert', 'update', 'delete', 'undo')),
    by_user text,
    job_id  bigint,
    line_no bigint,
    changes jsonb,
    PRIMARY KEY (id, seq)
);
-- An undo walks what one job did, customer by customer.
CREATE INDEX customer_history_job ON customer_history (job_id, id) WHERE job_id IS NOT NULL;
-- Pruning finds the oldest rows. Rows arrive in time order, so a block range
-- index serves, at almost no cost per inserted row (a btree here cost a first
-- import more than the rest of its history).
CREATE INDEX customer_history_at ON customer_history USING brin (at);

-- {"field": [old, new]} for every customer field that differs between two rows as jsonb.
CREATE FUNCTION customer_changes(old jsonb, new jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_object_agg(f, jsonb_build_array(old -> f, new -> f)), '{}')
    FROM unnest(ARRAY['customer_id', 'first_name', 'last_name', 'company', 'city', 'country', 'phone_1',
                      'phone_2', 'email', 'subscription_date', 'website', 'about']) AS f
    WHERE coalesce(old -> f, 'null') IS DISTINCT FROM coalesce(new -> f, 'null')
$$;

-- Writers other than the import and the undo (the API, the page, a reporting
-- tool's UPDATE): one history row per changed customer. The import and the
-- undo write their history set-based in their own statements and set
-- csvimp.history_kept_by = 'writer', so this trigger never fires for them.
-- Who: the hand-edit mark's name, else csvimp.actor (set by a delete).
CREATE FUNCTION customer_history_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changes jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO customer_history (id, action, by_user, changes)
        VALUES (NEW.id, 'insert', NEW.updated_manually_by, customer_changes('{}', to_jsonb(NEW)));
    ELSIF TG_OP = 'UPDATE' THEN
        changes := customer_changes(to_jsonb(OLD), to_jsonb(NEW));
        IF changes <> '{}' THEN
            INSERT INTO customer_history (id, action, by_user, changes)
            VALUES (NEW.id, 'update',
                    coalesce(NEW.updated_manually_by, nullif(current_setting('csvimp.actor', true), '')), changes);
        END IF;
    ELSE
        INSERT INTO customer_history (id, action, by_user, changes)
        VALUES (OLD.id, 'delete', nullif(current_setting('csvimp.actor', true), ''),
                customer_changes(to_jsonb(OLD), '{}'));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER customer_history_kept AFTER INSERT OR UPDATE OR DELETE ON customers
    FOR EACH ROW
    WHEN (current_setting('csvimp.history_kept_by', true) IS DISTINCT FROM 'writer')
    EXECUTE FUNCTION customer_history_row();

-- Any role that may write customers keeps history without a grant on it (as sql/017_*).
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION customer_history_row() SECURITY DEFINER SET search_path = %I, pg_temp',
                   current_schema());
END $$;
REVOKE ALL ON FUNCTION customer_history_row() FROM PUBLIC;
