-- customer_search without transition tables: the import writes it itself,
-- every other writer keeps it through plain row triggers.
--
-- 003's statement triggers saw each batch as a transition table, which Citus
-- cannot run on a distributed table, and they fed the trigram index row by
-- row, which was most of an import's cost. Now the import engine writes a
-- batch's search rows with the batch's own statements (sql/queries/
-- import_writer.sql), and can leave the trigram index out while it loads a
-- large share of the table and build it again in bulk before the job ends
-- (docs/scaling.md). Hand edits, the API and psql keep the table right
-- through the row triggers below; the writer's session says it keeps the
-- table itself by setting csvimp.search_kept_by to 'writer', and the insert
-- and update triggers stand aside for it.

LOCK TABLE customers IN ACCESS EXCLUSIVE MODE;

DROP TRIGGER customer_search_add ON customers;
DROP TRIGGER customer_search_change ON customers;
DROP TRIGGER customer_search_remove ON customers;
DROP FUNCTION customer_search_add();
DROP FUNCTION customer_search_change();
DROP FUNCTION customer_search_remove();

CREATE FUNCTION customer_search_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO customer_search (id, doc)
        VALUES (NEW.id, customer_search_doc(NEW.first_name, NEW.last_name, NEW.email, NEW.company));
    ELSIF TG_OP = 'UPDATE' THEN
        UPDATE customer_search
        SET doc = customer_search_doc(NEW.first_name, NEW.last_name, NEW.email, NEW.company)
        WHERE id = NEW.id;
    ELSE
        DELETE FROM customer_search WHERE id = OLD.id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER customer_search_add AFTER INSERT ON customers
    FOR EACH ROW
    WHEN (current_setting('csvimp.search_kept_by', true) IS DISTINCT FROM 'writer')
    EXECUTE FUNCTION customer_search_row();

-- Only rows whose text changed: a re-import that changes a phone number
-- leaves the search table and its index alone.
CREATE TRIGGER customer_search_change AFTER UPDATE ON customers
    FOR EACH ROW
    WHEN (current_setting('csvimp.search_kept_by', true) IS DISTINCT FROM 'writer'
          AND customer_search_doc(OLD.first_name, OLD.last_name, OLD.email, OLD.company)
              IS DISTINCT FROM customer_search_doc(NEW.first_name, NEW.last_name, NEW.email, NEW.company))
    EXECUTE FUNCTION customer_search_row();

-- The import never deletes; whoever does, the row goes.
CREATE TRIGGER customer_search_remove AFTER DELETE ON customers
    FOR EACH ROW EXECUTE FUNCTION customer_search_row();
