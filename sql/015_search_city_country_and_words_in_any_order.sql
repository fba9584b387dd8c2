-- Search also finds a customer by city and country, and a query of several
-- words finds rows holding every word, in any order ("Callahan Heather").
--
-- 1. customer_search_doc() takes city and country too. The four-argument
--    form of 003 stays for one release: a process from before this migration
--    still calls it (its import writer, sql/queries/import_writer.sql), and the
--    rows it writes until it is restarted lack city and country
--    (docs/operations.md, "Upgrades").
-- 2. The row triggers of 013 use the new text.
-- 3. customer_search is written again from customers, in bulk: the trigram
--    index is dropped first and built once at the end, as a large import
--    does (docs/scaling.md), and the primary key is built once too.
-- 4. customer_search_matching(): customer_search_ids() of 006 with one
--    pattern for the index and any number of further words each row must
--    also hold. customer_search_ids() stays for processes from before.

CREATE FUNCTION customer_search_doc(first_name text, last_name text, email text, company text,
                                    city text, country text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN lower(coalesce(first_name, '') || ' ' || coalesce(last_name, '') || ' '
             || coalesce(email, '') || ' ' || coalesce(company, '') || ' '
             || coalesce(city, '') || ' ' || coalesce(country, ''));

-- Writers (an import's batch, a hand edit) wait until this commits; reads
-- of customers go on. Both locks first and at their strongest, so that none
-- is upgraded later, which could deadlock with a batch: the trigger below
-- needs SHARE ROW EXCLUSIVE on customers, the rewrite all of customer_search
-- (searches wait for the rewrite: 99 s at 2 M rows on a loaded host; docs/scaling.md).
LOCK TABLE customers IN SHARE ROW EXCLUSIVE MODE;
LOCK TABLE customer_search IN ACCESS EXCLUSIVE MODE;

CREATE OR REPLACE FUNCTION customer_search_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO customer_search (id, doc)
        VALUES (NEW.id, customer_search_doc(NEW.first_name, NEW.last_name, NEW.email, NEW.company,
                                            NEW.city, NEW.country));
    ELSIF TG_OP = 'UPDATE' THEN
        UPDATE customer_search
        SET doc = customer_search_doc(NEW.first_name, NEW.last_name, NEW.email, NEW.company,
                                      NEW.city, NEW.country)
        WHERE id = NEW.id;
    ELSE
        DELETE FROM customer_search WHERE id = OLD.id;
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER customer_search_change ON customers;
CREATE TRIGGER customer_search_change AFTER UPDATE ON customers
    FOR EACH ROW
    WHEN (current_setting('csvimp.search_kept_by', true) IS DISTINCT FROM 'writer'
          AND customer_search_doc(OLD.first_name, OLD.last_name, OLD.email, OLD.company, OLD.city, OLD.country)
              IS DISTINCT FROM customer_search_doc(NEW.first_name, NEW.last_name, NEW.email, NEW.company,
                                                   NEW.city, NEW.country))
    EXECUTE FUNCTION customer_search_row();

-- The rewrite: a fresh table file in id order (TRUNCATE, then one INSERT),
-- so the walks of customer_search_matching() read it page after page and
-- no old row versions are left behind, and each index built once.
SELECT set_config('maintenance_work_mem', '256MB', true);
DROP INDEX IF EXISTS customer_search_trgm;
TRUNCATE customer_search;
ALTER TABLE customer_search DROP CONSTRAINT customer_search_pkey;
INSERT INTO customer_search (id, doc)
SELECT id, customer_search_doc(first_name, last_name, email, company, city, country)
FROM customers ORDER BY id;
ALTER TABLE customer_search ADD PRIMARY KEY (id);
CREATE INDEX customer_search_trgm ON customer_search USING gin (doc gin_trgm_ops);
ANALYZE customer_search;

-- The ids of the first `wanted` customers after `after` whose text holds
-- `pattern` and every pattern of `others` (LIKE), in id order. The ways to
-- find them are those of 006 (read its comment and 003's): walks in id
-- order while they are cheaper than the index's candidates, then the
-- trigram index asked for `index_pattern` (the start of `pattern`), every
-- candidate checked against all the patterns. The caller gives the word
-- the index selects best as `pattern`, so it is checked first. One change
-- to when walking stops, below.
--
-- `others` empty is folded away when the call is planned (force_custom_plan):
-- a query of one word costs what it cost in 006.
CREATE FUNCTION customer_search_matching(after bigint, pattern text, others text[], index_pattern text,
                                         proposed text, wanted integer)
RETURNS SETOF bigint
LANGUAGE plpgsql STABLE ROWS 50
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    rows_now double precision;
    first_walk bigint;
    walk bigint;
    walked_to bigint := after;
    hits bigint := 0;
    step_hits bigint;
    walked bigint;
    walked_proposed bigint;
    seen bigint := 0;           -- rows walked
    seen_proposed bigint := 0;  -- of those, rows the index would propose
BEGIN
    SELECT pg_relation_size(c.oid) / current_setting('block_size')::bigint
           * CASE WHEN c.relpages > 0 AND c.reltuples > 0 THEN c.reltuples / c.relpages ELSE 80 END
    INTO rows_now
    FROM pg_class c WHERE c.oid = 'customer_search'::regclass;
    first_walk := wanted + ceil(sqrt(rows_now * wanted));
    walk := first_walk;

    FOR step IN 1..3 LOOP
        RETURN QUERY
            SELECT next_rows.id
            FROM (SELECT s.id, s.doc FROM customer_search s
                  WHERE s.id > walked_to ORDER BY s.id LIMIT walk) AS next_rows
            WHERE next_rows.doc LIKE pattern
              AND (cardinality(others) = 0 OR next_rows.doc LIKE ALL (others))
            ORDER BY next_rows.id
            LIMIT wanted - hits;
        GET DIAGNOSTICS step_hits = ROW_COUNT;
        hits := hits + step_hits;
        IF hits = wanted THEN
            RETURN;
        END IF;
        SELECT count(*), count(*) FILTER (WHERE next_rows.doc LIKE proposed), max(next_rows.id)
        INTO walked, walked_proposed, walked_to
        FROM (SELECT s.id, s.doc FROM customer_search s
              WHERE s.id > walked_to ORDER BY s.id LIMIT walk) AS next_rows;
        IF walked < walk THEN  -- the walk reached the end of the table
            RETURN;
        END IF;
        seen := seen + walked;
        seen_proposed := seen_proposed + walked_proposed;
        EXIT WHEN hits = 0;
        walk := ceil(1.5 * (wanted - hits) * seen / hits);
        -- On while that costs less than checking the index's candidates (a
        -- walked row costs a quarter of a checked one), or is within one
        -- first walk. 006 also walked on up to 16 first walks whatever the
        -- index would have cost: 'evinm' walked 105,000 rows (two passes,
        -- 90 ms at 2 M rows) where the index proposed 500 (3 ms).
        EXIT WHEN walk > greatest(first_walk, 4 * rows_now * seen_proposed / seen);
    END LOOP;

    RETURN QUERY
        WITH candidates AS MATERIALIZED (
            SELECT s.id, s.doc FROM customer_search s
            WHERE s.id > walked_to AND s.doc LIKE index_pattern
        )
        SELECT candidates.id FROM candidates
        WHERE candidates.doc LIKE pattern
          AND (cardinality(others) = 0 OR candidates.doc LIKE ALL (others))
        ORDER BY candidates.id
        LIMIT wanted - hits;
END $$;
