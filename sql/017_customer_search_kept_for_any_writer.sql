-- Any role that may write customers keeps customer_search right without being
-- granted it too (an ETL job's role, a DBA's own): the row trigger's function
-- runs with the rights of its owner, the role that migrates. Its search_path
-- is fixed to this schema, with pg_temp last, so that a caller's temporary
-- table named customer_search cannot stand in for the real one.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION customer_search_row() SECURITY DEFINER SET search_path = %I, pg_temp',
                   current_schema());
END $$;
REVOKE ALL ON FUNCTION customer_search_row() FROM PUBLIC;
