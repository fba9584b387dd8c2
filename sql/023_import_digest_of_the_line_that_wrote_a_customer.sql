-- A re-import that changes nothing costs a look-up per row, not a compare in
-- the database (docs/history.md, "What a re-import writes").
--
-- import_digest: a 64-bit hash of the import's COPY line (the row's values as
-- the parser wrote them) that made the customer what it is now; NULL when
-- anything else has written the row since, or the line did not hold every
-- column. A re-import whose line hashes the same knows the row is unchanged
-- from the look-up alone, and never sends it to the database again. Any other
-- value falls back to the full compare, so a missing or stale digest can only
-- cost time, never a change.
ALTER TABLE customers ADD COLUMN import_digest bigint;

-- Every writer but the import and the undo (the API, the page, an operator's
-- UPDATE in psql) clears the digest: their values are no import line's. The
-- import and the undo set csvimp.history_kept_by = 'writer' (sql/019_*) and
-- write the column themselves. A row trigger without transition tables, so
-- it runs on a Citus distributed table as it does here (docs/scaling.md).
CREATE FUNCTION customers_digest_cleared() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.import_digest := NULL;
    RETURN NEW;
END $$;

CREATE TRIGGER customers_digest_cleared BEFORE UPDATE ON customers
    FOR EACH ROW
    WHEN (current_setting('csvimp.history_kept_by', true) IS DISTINCT FROM 'writer'
          AND OLD.import_digest IS NOT NULL)
    EXECUTE FUNCTION customers_digest_cleared();
