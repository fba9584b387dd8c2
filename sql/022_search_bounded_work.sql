-- Search at 10,000,000 customers (issue 26, docs/search.md): every request
-- does a bounded amount of work, and says so when that was not enough.
--
-- customer_search_matching (sql/015_*) turned to the trigram index whenever
-- walking in id order did not fill the page. Two kinds of query made that
-- slow at 10 M rows: those pg_trgm takes no trigram from (`qz`: the index
-- proposes every row, 820 ms), and those whose trigrams are each common
-- while the string is rare (`rand`: 'ran' and 'and' together in millions of
-- rows, 4.3 s cold). customer_search_bounded estimates, from the rows it
-- has walked, how many rows the index would propose: each of the trigrams
-- pg_trgm takes must be somewhere in a row (`proposed`, one LIKE pattern a
-- trigram; server/customers.py proposed_patterns). The index is asked only
-- when it proposes at most `candidate_budget` rows; otherwise the walk goes
-- on, at most `walk_budget` rows in all, and a last row (NULL, id) says
-- where it stopped: every match up to that id has been returned, and the
-- caller's next page starts there. The results over all pages are the same
-- as before; no single page reads millions of rows. While an import has
-- dropped the trigram index to build it again, every search walks within
-- its budget.
CREATE FUNCTION customer_search_bounded(after bigint, pattern text, others text[], index_pattern text,
                                        proposed text[], wanted integer, walk_budget bigint,
                                        candidate_budget bigint)
RETURNS TABLE (id bigint, searched_to bigint)
LANGUAGE plpgsql STABLE ROWS 50
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    rows_now double precision;
    walk bigint;
    first_walk bigint;
    walked_to bigint := after;
    hits bigint := 0;
    step_hits bigint;
    walked bigint;
    walk_end bigint;
    seen bigint := 0;           -- rows walked
    seen_proposed bigint := 0;  -- of the first walk's rows, those the index would propose
    candidates double precision;
    needed double precision;
BEGIN
    SELECT pg_relation_size(c.oid) / current_setting('block_size')::bigint
           * CASE WHEN c.relpages > 0 AND c.reltuples > 0 THEN c.reltuples / c.relpages ELSE 80 END
    INTO rows_now
    FROM pg_class c WHERE c.oid = 'customer_search'::regclass;
    walk := least(wanted + ceil(sqrt(rows_now * wanted)), walk_budget);
    first_walk := walk;

    LOOP
        -- Where this walk ends, from the primary key alone (no text read).
        SELECT count(*), max(next_rows.id) INTO walked, walk_end
        FROM (SELECT s.id FROM customer_search s
              WHERE s.id > walked_to ORDER BY s.id LIMIT walk) AS next_rows;
        -- The rows themselves in id order (the LIMIT keeps the planner from
        -- turning to the trigram index for the LIKE).
        RETURN QUERY
            SELECT next_rows.id, NULL::bigint
            FROM (SELECT s.id, s.doc FROM customer_search s
                  WHERE s.id > walked_to ORDER BY s.id LIMIT walk) AS next_rows
            WHERE next_rows.doc LIKE pattern
              AND (cardinality(others) = 0 OR next_rows.doc LIKE ALL (others))
            ORDER BY next_rows.id
            LIMIT wanted - hits;
        GET DIAGNOSTICS step_hits = ROW_COUNT;
        hits := hits + step_hits;
        IF hits = wanted OR walked < walk THEN  -- a full page, or the end of the table
            RETURN;
        END IF;
        -- What the index would propose is estimated once, from the first
        -- walk: each further pass over the text costs as much as the walk.
        IF seen = 0 THEN
            SELECT count(*) INTO seen_proposed
            FROM (SELECT s.doc FROM customer_search s
                  WHERE s.id > walked_to ORDER BY s.id LIMIT walk) AS next_rows
            WHERE next_rows.doc LIKE ALL (proposed);
        END IF;
        walked_to := walk_end;
        seen := seen + walked;
        -- While an import rebuilds the trigram index (docs/scaling.md) there is
        -- none: asking for candidates would read every row.
        candidates := CASE WHEN to_regclass('customer_search_trgm') IS NULL THEN rows_now
                           ELSE rows_now * seen_proposed / first_walk END;
        -- Rows still to walk to fill the page at the rate seen so far (with
        -- a margin), or as far as the budget goes when nothing matched yet.
        needed := CASE WHEN hits = 0 THEN 'Infinity' ELSE 1.5 * (wanted - hits) * seen / hits END;
        -- A walked row costs about a quarter of a candidate the index
        -- proposes (read in id order, not here and there): walk on while
        -- that is cheaper and within the budget.
        IF needed <= 4 * candidates AND seen + needed <= walk_budget THEN
            walk := ceil(needed);
        ELSIF candidates <= candidate_budget THEN
            EXIT;
        ELSIF seen < walk_budget THEN
            walk := walk_budget - seen;  -- the rest of the budget, then stop
        ELSE
            RETURN QUERY SELECT NULL::bigint, walked_to;
            RETURN;
        END IF;
    END LOOP;

    RETURN QUERY
        WITH candidates AS MATERIALIZED (
            SELECT s.id, s.doc FROM customer_search s
            WHERE s.id > walked_to AND s.doc LIKE index_pattern
        )
        SELECT candidates.id, NULL::bigint FROM candidates
        WHERE candidates.doc LIKE pattern
          AND (cardinality(others) = 0 OR candidates.doc LIKE ALL (others))
        ORDER BY candidates.id
        LIMIT wanted - hits;
END $$;

-- The Customer Id prefix branch reads ids only: with id in the index it is
-- an index-only scan of the prefix's range, where customers_customer_id_lower
-- fetched each matching customer from the 13 GB table (`19`, 39,000 rows of
-- 10 M: 183 ms warm, 1.2 s after a restart; 11 to 18 ms now). customer_id
-- itself is included because the planner takes an index-only scan only when
-- every column the query names is in the index, lower(customer_id) not
-- counting for customer_id. It serves the exact and the case-folded lookups
-- the old one served.
CREATE INDEX customers_customer_id_lower_id ON customers (lower(customer_id), id) INCLUDE (customer_id);
DROP INDEX customers_customer_id_lower;
-- Statistics of lower(customer_id) come with an ANALYZE after its index is
-- made: without them the planner takes `7` (one Customer Id in 16) for a
-- rare prefix and reads 625,000 ids from the index (4 s at 10 M rows)
-- instead of walking the first few hundred customers.
ANALYZE customers;

-- pg_prewarm lets the service read the search's relations into memory when
-- it starts (server/customers.py warm). Where the extension is not installed
-- or the role may not create it, the service does without.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_prewarm;
EXCEPTION WHEN undefined_file OR insufficient_privilege OR feature_not_supported THEN
    RAISE NOTICE 'pg_prewarm is not available: the search warms by reading instead';
END $$;
