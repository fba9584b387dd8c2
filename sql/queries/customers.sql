-- Customers as the API shows them. (No placeholders in comments: psycopg2
-- would fill them in there too.) Every query returns the same columns, in
-- the order of server.customers.FIELDS.
--
-- Pages are keyset pages on id: `id > last id seen`, never OFFSET, so a page
-- deep in millions of rows costs what the first one costs, and rows inserted
-- or deleted between two pages neither repeat nor hide others.

-- name: page
-- The filters are literals by the time PostgreSQL plans (psycopg2 fills them
-- in), so a filter that is off folds away and one that is on picks its index
-- (sql/014_*): customers_import_job_id_id, customers_edited_by_hand.
SELECT id, customer_id, first_name, last_name, company, city, country, phone_1, phone_2,
       email, subscription_date, website, about, created_at, updated_at, updated_manually_at,
       updated_manually_by
FROM customers
WHERE id > %(after)s
  AND (%(job)s::bigint IS NULL OR import_job_id = %(job)s)
  AND (NOT %(edited)s OR updated_manually_at IS NOT NULL)
ORDER BY id
LIMIT %(limit)s

-- name: page_newest
-- Newest first: ids are given out in creation order.
SELECT id, customer_id, first_name, last_name, company, city, country, phone_1, phone_2,
       email, subscription_date, website, about, created_at, updated_at, updated_manually_at,
       updated_manually_by
FROM customers
WHERE id < %(before)s
  AND (%(job)s::bigint IS NULL OR import_job_id = %(job)s)
  AND (NOT %(edited)s OR updated_manually_at IS NOT NULL)
ORDER BY id DESC
LIMIT %(limit)s

-- name: page_updated
-- Recently updated first, on customers_updated_at_id; the cursor carries
-- updated_at in epoch microseconds, exact, as the ETag does.
SELECT id, customer_id, first_name, last_name, company, city, country, phone_1, phone_2,
       email, subscription_date, website, about, created_at, updated_at, updated_manually_at,
       updated_manually_by
FROM customers
WHERE (%(at)s::bigint IS NULL
       OR (updated_at, id) < (timestamptz 'epoch' + %(at)s * interval '1 microsecond', %(before)s))
  AND (%(job)s::bigint IS NULL OR import_job_id = %(job)s)
  AND (NOT %(edited)s OR updated_manually_at IS NOT NULL)
ORDER BY updated_at DESC, id DESC
LIMIT %(limit)s

-- name: estimated_total
-- The planner's own estimate (table statistics scaled to the table's size
-- now), or an exact count while the table is small enough to count at once.
SELECT CASE WHEN pg_relation_size(c.oid) <= %(count_below_bytes)s
            THEN (SELECT count(*) FROM customers)
            ELSE (pg_relation_size(c.oid) / current_setting('block_size')::bigint
                  * CASE WHEN c.relpages > 0 AND c.reltuples >= 0 THEN c.reltuples / c.relpages ELSE 80 END)::bigint
       END,
       pg_relation_size(c.oid) <= %(count_below_bytes)s
FROM pg_class c WHERE c.oid = 'customers'::regclass

-- name: search_hits
-- customer_search_bounded (sql/022_*, after sql/015_*) finds the page's ids
-- in the narrow search table with bounded work; a last row (NULL, id) says
-- it stopped there. The patterns arrive with LIKE's wildcards already
-- escaped by a backslash; lowered here as the text was (lower() folds
-- beyond ASCII as Python may not).
SELECT hit.id, hit.searched_to
FROM customer_search_bounded(%(after)s, lower(%(pattern)s),
                             ARRAY(SELECT lower(other) FROM unnest(%(others)s::text[]) AS other),
                             lower(%(index_pattern)s),
                             ARRAY(SELECT lower(trigram) FROM unnest(%(proposed)s::text[]) AS trigram),
                             %(limit)s, %(walk_budget)s, %(candidate_budget)s) AS hit

-- name: search_rows
-- The rows of search_hits' ids, with the Customer Ids that start with the
-- query in any case (exact ones included) up to where the search stopped:
-- a range of customers_customer_id_lower_id (sql/022_*; C.UTF-8 sorts by
-- code point, so the prefix's rows lie between it and it followed by the
-- last code point), read from the index alone.
SELECT id, customer_id, first_name, last_name, company, city, country, phone_1, phone_2,
       email, subscription_date, website, about, created_at, updated_at, updated_manually_at,
       updated_manually_by
FROM customers
WHERE id IN (SELECT unnest(%(ids)s::bigint[])
             UNION ALL
             (SELECT c.id FROM customers c
              WHERE lower(c.customer_id) >= lower(%(id_prefix)s)
                AND lower(c.customer_id) < lower(%(id_prefix)s) || chr(1114111)
                AND starts_with(lower(c.customer_id), lower(%(id_prefix)s))
                AND c.id > %(after)s AND c.id <= %(upto)s
              ORDER BY c.id
              LIMIT %(limit)s))
ORDER BY id
LIMIT %(limit)s

-- name: search_count
-- How many customers the pages of a search list, counted up to `cap` + 1
-- (each way of finding them stops there), with the same bounded work as a
-- page: the second column, when not null, is the id the count stopped at
-- (the matches up to it are counted, those after it are not known).
WITH hits AS MATERIALIZED (
    SELECT hit.id, hit.searched_to
    FROM customer_search_bounded(0, lower(%(pattern)s),
                                 ARRAY(SELECT lower(other) FROM unnest(%(others)s::text[]) AS other),
                                 lower(%(index_pattern)s),
                                 ARRAY(SELECT lower(trigram) FROM unnest(%(proposed)s::text[]) AS trigram),
                                 %(cap)s + 1, %(walk_budget)s, %(candidate_budget)s) AS hit
)
SELECT least(count(*), %(cap)s + 1), (SELECT max(searched_to) FROM hits)
FROM (SELECT hits.id FROM hits WHERE hits.id IS NOT NULL
      UNION
      (SELECT c.id FROM customers c
       WHERE lower(c.customer_id) >= lower(%(id_prefix)s)
         AND lower(c.customer_id) < lower(%(id_prefix)s) || chr(1114111)
         AND starts_with(lower(c.customer_id), lower(%(id_prefix)s))
         AND c.id <= coalesce((SELECT max(searched_to) FROM hits), 9223372036854775807)
       LIMIT %(cap)s + 1)) AS found

-- name: filter_count
-- How many customers a filter of page shows, counted up to `cap` + 1.
SELECT count(*)
FROM (SELECT 1 FROM customers
      WHERE (%(job)s::bigint IS NULL OR import_job_id = %(job)s)
        AND (NOT %(edited)s OR updated_manually_at IS NOT NULL)
      LIMIT %(cap)s + 1) AS hits

-- name: any_customers
SELECT EXISTS (SELECT 1 FROM customers)

-- name: by_id
SELECT id, customer_id, first_name, last_name, company, city, country, phone_1, phone_2,
       email, subscription_date, website, about, created_at, updated_at, updated_manually_at,
       updated_manually_by
FROM customers
WHERE id = %(id)s

-- name: create
-- Made by a person, so marked as edited by hand: imports leave it alone.
INSERT INTO customers (customer_id, first_name, last_name, company, city, country, phone_1, phone_2,
                       email, subscription_date, website, about, updated_manually_at, updated_manually_by)
VALUES (%(customer_id)s, %(first_name)s, %(last_name)s, %(company)s, %(city)s, %(country)s,
        %(phone_1)s, %(phone_2)s, %(email)s, %(subscription_date)s::date, %(website)s, %(about)s,
        now(), %(by)s)
RETURNING id, customer_id, first_name, last_name, company, city, country, phone_1, phone_2,
          email, subscription_date, website, about, created_at, updated_at, updated_manually_at,
       updated_manually_by

-- name: update
-- Only the fields named in `present` change. With `versions` (updated_at in
-- epoch microseconds, from If-Match) the row changes only if it is still at
-- one of them: the check and the write are one statement, so two editors can
-- never both win. No row back means absent or stale; the caller tells which.
UPDATE customers SET
    customer_id = CASE WHEN 'customer_id' = ANY(%(present)s) THEN %(customer_id)s ELSE customer_id END,
    first_name = CASE WHEN 'first_name' = ANY(%(present)s) THEN %(first_name)s ELSE first_name END,
    last_name = CASE WHEN 'last_name' = ANY(%(present)s) THEN %(last_name)s ELSE last_name END,
    company = CASE WHEN 'company' = ANY(%(present)s) THEN %(company)s ELSE company END,
    city = CASE WHEN 'city' = ANY(%(present)s) THEN %(city)s ELSE city END,
    country = CASE WHEN 'country' = ANY(%(present)s) THEN %(country)s ELSE country END,
    phone_1 = CASE WHEN 'phone_1' = ANY(%(present)s) THEN %(phone_1)s ELSE phone_1 END,
    phone_2 = CASE WHEN 'phone_2' = ANY(%(present)s) THEN %(phone_2)s ELSE phone_2 END,
    email = CASE WHEN 'email' = ANY(%(present)s) THEN %(email)s ELSE email END,
    subscription_date = CASE WHEN 'subscription_date' = ANY(%(present)s)
                             THEN %(subscription_date)s::date ELSE subscription_date END,
    website = CASE WHEN 'website' = ANY(%(present)s) THEN %(website)s ELSE website END,
    about = CASE WHEN 'about' = ANY(%(present)s) THEN %(about)s ELSE about END,
    -- clock time, not transaction time: the version must move on every edit.
    updated_at = greatest(clock_timestamp(), updated_at + interval '1 microsecond'),
    updated_manually_at = clock_timestamp(),
    updated_manually_by = %(by)s
WHERE id = %(id)s
  AND (%(versions)s::bigint[] IS NULL
       OR (extract(epoch FROM updated_at) * 1000000)::bigint = ANY(%(versions)s::bigint[]))
RETURNING id, customer_id, first_name, last_name, company, city, country, phone_1, phone_2,
          email, subscription_date, website, about, created_at, updated_at, updated_manually_at,
       updated_manually_by

-- name: release
-- Imports may update this customer again: the hand-edit mark goes. The
-- version moves on, so an editor holding the old one is told (412).
UPDATE customers SET
    updated_at = greatest(clock_timestamp(), updated_at + interval '1 microsecond'),
    updated_manually_at = NULL,
    updated_manually_by = NULL
WHERE id = %(id)s
  AND (%(versions)s::bigint[] IS NULL
       OR (extract(epoch FROM updated_at) * 1000000)::bigint = ANY(%(versions)s::bigint[]))
RETURNING id, customer_id, first_name, last_name, company, city, country, phone_1, phone_2,
          email, subscription_date, website, about, created_at, updated_at, updated_manually_at,
       updated_manually_by

-- name: delete
-- Conditional like update: see there. Who deletes is named for the history
-- trigger (sql/019_*), for this statement's transaction only.
WITH actor AS (SELECT set_config('csvimp.actor', coalesce(%(by)s, ''), true) AS name)
DELETE FROM customers
WHERE id = %(id)s
  AND (SELECT name IS NOT NULL FROM actor)
  AND (%(versions)s::bigint[] IS NULL
       OR (extract(epoch FROM updated_at) * 1000000)::bigint = ANY(%(versions)s::bigint[]))
RETURNING id

-- name: warm_plan
-- What warm reads, most used first: the size of each relation search and
-- pages read, and the shared_buffers they share; null sizes when pg_prewarm
-- is not installed (sql/022_*).
SELECT r.name, pg_relation_size(r.name::regclass), pg_size_bytes(current_setting('shared_buffers')),
       to_regproc('pg_prewarm') IS NOT NULL
FROM unnest(ARRAY['customer_search_pkey', 'customer_search', 'customers_customer_id_lower_id',
                  'customers_pkey', 'customer_search_trgm']) WITH ORDINALITY AS r (name, rank)
WHERE to_regclass(r.name) IS NOT NULL
ORDER BY r.rank

-- name: warm
-- 'buffer' into shared_buffers; 'read' into the OS cache only, for what
-- would push the relations before it out.
SELECT pg_prewarm(%(name)s::regclass, %(mode)s)
