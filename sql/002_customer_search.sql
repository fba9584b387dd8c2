-- Customer search: case-insensitive substring over names, email and company.
--
-- One GIN trigram index on one immutable expression. sql/queries/customers.sql
-- repeats the expression verbatim, because PostgreSQL only uses an expression
-- index for the very same expression. It is the only index beyond the keys:
-- every index is paid for again by each row the importer copies in.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE INDEX customers_search_trgm ON customers USING gin (
    (lower(coalesce(first_name, '') || ' ' || coalesce(last_name, '') || ' '
           || coalesce(email, '') || ' ' || coalesce(company, ''))) gin_trgm_ops
);
