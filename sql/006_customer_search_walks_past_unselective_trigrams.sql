-- Search: walk on where the trigram index would propose most of the table.
--
-- 003 turned to the index once walking on in id order looked like more than
-- 16 first walks. For a string whose words are short or common, such as
-- 'z@walker' or '3@ng', that was the wrong way round: pg_trgm cuts text at
-- '@', '.' and spaces and takes no trigrams from a word of one or two
-- letters, so the index proposed every row with 'walker' in it (95,000 of
-- two million, nearly every page of the table) to find 1,081. That took
-- 160 ms; walking the 170,000 rows the page needed takes 38 ms.
--
-- So the walk now also counts the rows the index would propose, roughly:
-- those holding the pattern's words of three letters or more, in order. A
-- page walks on while walking looks cheaper than checking those candidates
-- (a walked row costs about a quarter of a checked candidate), for up to
-- three walks; the second walk is also taken within 16 first walks, as
-- before. Then the index takes over, as in 003, whose comment describes the
-- rest.

CREATE OR REPLACE FUNCTION customer_search_ids(after bigint, pattern text, index_pattern text, wanted integer)
RETURNS SETOF bigint
LANGUAGE plpgsql STABLE ROWS 50
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    -- Roughly what the trigram index proposes: the pattern's words of three
    -- letters or more, in order, whatever lies between them.
    loose text := '%' || array_to_string(ARRAY(
        SELECT word[1] FROM regexp_matches(index_pattern, '([[:alnum:]]{3,})', 'g') AS word), '%') || '%';
    rows_now double precision;
    first_walk bigint;
    walk bigint;
    walked_to bigint := after;
    hits bigint := 0;
    step_hits bigint;
    walked bigint;
    walked_loose bigint;
    seen bigint := 0;        -- rows walked
    seen_loose bigint := 0;  -- of those, rows the index would propose
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
        SELECT count(*), count(*) FILTER (WHERE next_rows.doc LIKE loose), max(next_rows.id)
        INTO walked, walked_loose, walked_to
        FROM (SELECT s.id, s.doc FROM customer_search s
              WHERE s.id > walked_to ORDER BY s.id LIMIT walk) AS next_rows;
        IF walked < walk THEN  -- the walk reached the end of the table
            RETURN;
        END IF;
        seen := seen + walked;
        seen_loose := seen_loose + walked_loose;
        EXIT WHEN hits = 0;
        walk := ceil(1.5 * (wanted - hits) * seen / hits);
        -- On while that costs less than checking the index's candidates (a
        -- walked row costs a quarter of a checked one); a second walk also
        -- within 16 first walks, as in 003.
        EXIT WHEN walk > CASE WHEN step = 1 THEN greatest(16 * first_walk, 4 * rows_now * seen_loose / seen)
                              ELSE 4 * rows_now * seen_loose / seen END;
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
