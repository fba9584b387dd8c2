-- A Customer Id search ignores case: `eb54ef11` finds `EB54EF11...` (issue 27).
-- The prefix branch of search_page (sql/queries/customers.sql) asks for a
-- range of lower(customer_id); this index serves that range as the unique
-- index on customer_id served the exact-case one. The ids are ASCII in the
-- files seen so far, so lower() is cheap; built once here, kept by every
-- writer like any index.
CREATE INDEX customers_customer_id_lower ON customers (lower(customer_id));
