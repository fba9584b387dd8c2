-- The history trigger (sql/019_*) named the hand-edit mark's person for every
-- update, so a reporting tool's UPDATE of a customer someone once edited by
-- hand was put on that person. The mark names who made this change only when
-- this change set it (the API and the page set it on every edit); otherwise
-- csvimp.actor, else nobody.
CREATE OR REPLACE FUNCTION customer_history_row() RETURNS trigger LANGUAGE plpgsql AS $$
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
                    coalesce(CASE WHEN NEW.updated_manually_at IS DISTINCT FROM OLD.updated_manually_at
                                  THEN NEW.updated_manually_by END,
                             nullif(current_setting('csvimp.actor', true), '')), changes);
        END IF;
    ELSE
        INSERT INTO customer_history (id, action, by_user, changes)
        VALUES (OLD.id, 'delete', nullif(current_setting('csvimp.actor', true), ''),
                customer_changes(to_jsonb(OLD), '{}'));
    END IF;
    RETURN NULL;
END $$;

-- CREATE OR REPLACE resets what 019 set on the function: set it again.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION customer_history_row() SECURITY DEFINER SET search_path = %I, pg_temp',
                   current_schema());
END $$;
REVOKE ALL ON FUNCTION customer_history_row() FROM PUBLIC;
