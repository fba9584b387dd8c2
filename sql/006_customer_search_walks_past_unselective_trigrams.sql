-- Search: walk on where the trigram index would propose most of the table.
--
-- 003 turned to the index once walking on in id order looked like more than
-- 16 first walks. For a string whose words are short or common, such as
-- 'z@walker' or '3@ng', that was the wrong way round: pg_trgm cuts text
-- into words of letters and digits, and from 'z@walker' takes trigrams of
-- 'walker' only, so the index proposed every row with a word starting
-- 'walker' (95,000 of two million, nearly every page of the table) to find
-- 1,081. That took 160 ms; walking the 170,000 rows the page needed takes
-- 38 ms.
--
-- So a walk now also counts the rows the index would propose, roughly:
-- those LIKE `proposed`, the words of the query pg_trgm takes trigrams from
-- (server/customers.py, proposed_pattern). A page walks on while walking
-- looks cheaper than checking those candidates (a walked row costs about a
-- quarter of a checked candidate), for up to three walks; anyway the
-- second walk within 16 first walks, as before, and a third within one.
-- Then the index takes over, as in 003, whose comment describes the rest.

DROP FUNCTION customer_search_ids(bigint, text, text, integer);

CREATE FUNCTION customer_search_ids(after bigint, pattern text, index_pattern text, proposed text,
                                    wanted integer)
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
        -- walked row costs a quarter of a checked one); anyway a second walk
        -- within 16 first walks, as in 003, and a third within one.
        EXIT WHEN walk > greatest(CASE WHEN step = 1 THEN 16 ELSE 1 END * first_walk,
                                  4 * rows_now * seen_proposed / seen);
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
