-- Resumable uploads (server/tus). Every change to an upload happens while its
-- advisory lock (class 7343; the import engine uses 7342) is held, so two
-- PATCHes, a DELETE, an import and the sweep never act on one upload at once,
-- whichever processes they run in.

-- name: take_turns
-- Creations take turns, in every process, from checking what is held to the INSERT
-- (in one transaction): two at once could otherwise each fit alone and not together.
-- A one-key lock: never one of the two-key upload locks (7343, id).
SELECT pg_advisory_xact_lock(7344)

-- name: held
-- What the live uploads hold: how many the caller has, and the bytes all of them still
-- announce (Upload-Length less what is on disk already; a complete upload announces none).
SELECT count(*) FILTER (WHERE owner IS NOT DISTINCT FROM %(owner)s),
       coalesce(sum(size - "offset"), 0)::bigint
FROM uploads WHERE expires > now()

-- name: create
INSERT INTO uploads (id, filename, size, metadata, owner, expires)
VALUES (%(id)s, %(filename)s, %(size)s, %(metadata)s, %(owner)s,
        now() + make_interval(secs => %(ttl)s))
RETURNING expires

-- name: get
SELECT id, filename, size, "offset", metadata, owner, expires, sha256, expires <= now() AS expired
FROM uploads WHERE id = %(id)s

-- name: try_lock
SELECT pg_try_advisory_lock(7343, hashtext(%(id)s))

-- name: unlock
SELECT pg_advisory_unlock(7343, hashtext(%(id)s))

-- name: advance
-- Only from the offset the caller read under the lock: a second writer can never
-- move it, and a lost race shows as no row.
UPDATE uploads SET
    "offset" = %(offset)s,
    sha256 = %(sha256)s,
    expires = now() + make_interval(secs => %(ttl)s)
WHERE id = %(id)s AND "offset" = %(from)s
RETURNING expires

-- name: adopt
-- A file the import preview received in one multipart request: a complete
-- upload from the start, which POST /import {"upload": ID} imports.
INSERT INTO uploads (id, filename, size, "offset", owner, expires, sha256)
VALUES (%(id)s, %(filename)s, %(size)s, %(size)s, %(owner)s,
        now() + make_interval(secs => %(ttl)s), %(sha256)s)

-- name: delete
DELETE FROM uploads WHERE id = %(id)s

-- name: expired
SELECT id FROM uploads WHERE expires <= now() ORDER BY expires LIMIT %(limit)s

-- name: known
SELECT id FROM uploads WHERE id = ANY(%(ids)s)
