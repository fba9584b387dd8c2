-- Customer history (sql/019_*, docs/history.md): reading and pruning.

-- name: page
-- Newest first; `after` is the seq of the last item of the page before.
SELECT seq, at, action, by_user, job_id, line_no, coalesce(changes, '{}')
FROM customer_history
WHERE id = %(id)s AND (%(after)s::bigint IS NULL OR seq < %(after)s)
ORDER BY seq DESC
LIMIT %(limit)s

-- name: prune_slice
-- One slice of the rows older than the kept days, oldest first, by key (no ctid:
-- a sharded table has none that means anything across shards).
DELETE FROM customer_history h
USING (SELECT id, seq FROM customer_history
       WHERE at < now() - make_interval(days => %(days)s)
       ORDER BY at LIMIT %(slice)s) AS old
WHERE h.id = old.id AND h.seq = old.seq
