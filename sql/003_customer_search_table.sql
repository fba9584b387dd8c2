-- Search reads a narrow table of its own instead of the customers table.
--
-- A trigram index only proposes candidates; PostgreSQL must read each
-- candidate's row to check it. In customers a row is over a kilobyte (the
-- `about` text), so three share a page and every candidate costs a page
-- read: a string with ten thousand candidates read ~80 MB and took up to
-- a second on two million customers. Here a row is the lowercased search
-- text and the id, under a hundred bytes, and the whole table (~180 MB for
-- two million) is small enough to stay cached.
--
-- customer_search follows customers through statement-level triggers, so
-- every writer (imports, the API, psql) keeps it right, and a batch of rows
-- costs one statement, not one per row.

-- The text search looks in, in one place: the triggers and the backfill call it.
CREATE FUNCTION customer_search_doc(first_name text, last_name text, email text, company text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN lower(coalesce(first_name, '') || ' ' || coalesce(last_name, '') || ' '
             || coalesce(email, '') || ' ' || coalesce(company, ''));

-- First, so that no row is written between the copy below and the triggers
-- that follow it (an import still running in an older process, say); the
-- strongest lock at once, as a weaker one upgraded later could deadlock with
-- an import batch.
LOCK TABLE customers IN ACCESS EXCLUSIVE MODE;

CREATE TABLE customer_search (
    -- customers.id, which cannot change (below). No foreign key: the triggers
    -- keep the two in step, and a key would probe customers once per row.
    id  bigint NOT NULL,
    doc text NOT NULL
);

INSERT INTO customer_search (id, doc)
SELECT id, customer_search_doc(first_name, last_name, email, company) FROM customers;

ALTER TABLE customer_search ADD PRIMARY KEY (id);
DROP INDEX customers_search_trgm;
CREATE INDEX customer_search_trgm ON customer_search USING gin (doc gin_trgm_ops);

-- A customer's id is its place in search, in pages and in cursors; an id
-- changed behind the triggers' back would leave a row there that points at
-- nothing and cut every later page short.
CREATE FUNCTION customers_keep_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id IS DISTINCT FROM OLD.id THEN
        RAISE EXCEPTION 'a customer''s id cannot change (customer %)', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER customers_keep_id BEFORE UPDATE OF id ON customers
    FOR EACH ROW EXECUTE FUNCTION customers_keep_id();

CREATE FUNCTION customer_search_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO customer_search (id, doc)
    SELECT id, customer_search_doc(first_name, last_name, email, company) FROM added;
    RETURN NULL;
END $$;

CREATE TRIGGER customer_search_add AFTER INSERT ON customers
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION customer_search_add();

-- Only rows whose text changed are written: a re-import that changes a
-- phone number leaves the search table and its index alone.
--
-- This and the next trigger join a batch to customer_search by id. Their
-- plan is made once a session, for the first batch's size; from ~20,000
-- rows on it was a merge join reading the table from its first id, and
-- every later batch of the import kept it. A batch is always small beside
-- the table: one primary-key probe a row is the plan.
CREATE FUNCTION customer_search_change() RETURNS trigger LANGUAGE plpgsql
SET enable_mergejoin = off SET enable_hashjoin = off AS $$
BEGIN
    UPDATE customer_search s SET doc = changed_doc.doc
    FROM (SELECT id, customer_search_doc(first_name, last_name, email, company) AS doc
          FROM changed) AS changed_doc
    WHERE s.id = changed_doc.id AND s.doc <> changed_doc.doc;
    RETURN NULL;
END $$;

CREATE TRIGGER customer_search_change AFTER UPDATE ON customers
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION customer_search_change();

CREATE FUNCTION customer_search_remove() RETURNS trigger LANGUAGE plpgsql
SET enable_mergejoin = off SET enable_hashjoin = off AS $$
BEGIN
    DELETE FROM customer_search s USING removed WHERE s.id = removed.id;
    RETURN NULL;
END $$;

CREATE TRIGGER customer_search_remove AFTER DELETE ON customers
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION customer_search_remove();

CREATE FUNCTION customer_search_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE customer_search;
    RETURN NULL;
END $$;

CREATE TRIGGER customer_search_clear AFTER TRUNCATE ON customers
    FOR EACH STATEMENT EXECUTE FUNCTION customer_search_clear();

-- The ids of the first `wanted` customers after `after` whose text is LIKE
-- `pattern`, in id order.
--
-- There are two ways to find them, and which is cheaper depends on how
-- common the string is, which the planner can only guess for LIKE '%x%'
-- (from a sample; it took a string in 5% of the rows for a rare one). So
-- both ways are bounded here, whatever the guess:
--
-- 1. Walk the next `walk` rows in id order. A string in more than one row of
--    walk / wanted fills its page on the way, and the walk stops there.
--    With walk = sqrt(rows * wanted), ~10,000 rows for a page of 50 among
--    two million customers, a rarer string has at most as many rows beyond
--    the walk as the walk had.
-- 2. A string the walk found, but not often enough, walks on as far as its
--    frequency in the walk says the page needs (half again for luck), if
--    that is within 16 walks. The index proposes a row for holding the
--    pattern's trigrams, anywhere and in any order: for ' harris,' it
--    proposed 156,000 rows to find 8,800. Walking is cheaper while the
--    string is that common.
-- 3. Then the string is rare: the trigram index yields every candidate past
--    the walk, and they are checked and sorted. `index_pattern` may be the
--    start of a long query only, as each further trigram adds a posting
--    list to intersect; the whole pattern is then checked on the candidates.
--
-- STABLE: every statement here sees the snapshot of the query that calls it.
-- plan_cache_mode: each call is planned for its own pattern; a plan cached
-- for one pattern may not suit another.
CREATE FUNCTION customer_search_ids(after bigint, pattern text, index_pattern text, wanted integer)
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
BEGIN
    -- Rows now, reckoned as the planner does: the pages the table has now times
    -- the rows a page held at the last ANALYZE (~80 before any), because the
    -- table grows during an import, long before statistics catch up.
    SELECT pg_relation_size(c.oid) / current_setting('block_size')::bigint
           * CASE WHEN c.relpages > 0 AND c.reltuples > 0 THEN c.reltuples / c.relpages ELSE 80 END
    INTO rows_now
    FROM pg_class c WHERE c.oid = 'customer_search'::regclass;
    first_walk := wanted + ceil(sqrt(rows_now * wanted));
    walk := first_walk;

    FOR step IN 1..2 LOOP
        RETURN QUERY
            SELECT next_rows.id
            FROM (SELECT s.id, s.doc FROM customer_search s
                  WHERE s.id > walked_to ORDER BY s.id LIMIT walk) AS next_rows
            WHERE next_rows.doc LIKE pattern
            ORDER BY next_rows.id
            LIMIT wanted - hits;
        GET DIAGNOSTICS step_hits = ROW_COUNT;
        hits := hits + step_hits;
        IF hits = wanted THEN
            RETURN;
        END IF;
        SELECT count(*), max(next_ids.id) INTO walked, walked_to
        FROM (SELECT s.id FROM customer_search s
              WHERE s.id > walked_to ORDER BY s.id LIMIT walk) AS next_ids;
        IF walked < walk THEN  -- the walk reached the end of the table
            RETURN;
        END IF;
        EXIT WHEN hits = 0;
        walk := ceil(1.5 * (wanted - hits) * walk / hits);
        EXIT WHEN walk > 16 * first_walk;
    END LOOP;

    RETURN QUERY
        WITH candidates AS MATERIALIZED (
            SELECT s.id, s.doc FROM customer_search s
            WHERE s.id > walked_to AND s.doc LIKE index_pattern
        )
        SELECT candidates.id FROM candidates
        WHERE candidates.doc LIKE pattern
        ORDER BY candidates.id
        LIMIT wanted - hits;
END $$;
