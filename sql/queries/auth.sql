-- Users, API tokens, sign-in links, sessions and the sign-in rate limit.
-- Secrets arrive here already hashed; see server/auth/store.py.

-- name: add_user
INSERT INTO users (name, role, password_hash)
VALUES (%(name)s, %(role)s, %(password_hash)s)
ON CONFLICT (name) DO NOTHING
RETURNING name

-- name: add_first_admin
-- Only on a database with no user at all; two processes starting at once
-- make one (the primary key decides).
INSERT INTO users (name, role)
SELECT %(name)s, 'admin' WHERE NOT EXISTS (SELECT FROM users)
ON CONFLICT (name) DO NOTHING
RETURNING name

-- name: first_admin
SELECT name FROM users WHERE role = 'admin' ORDER BY created_at, name LIMIT 1

-- name: user_by_name
SELECT name, role, password_hash FROM users WHERE name = %(name)s

-- name: set_password_hash
UPDATE users SET password_hash = %(password_hash)s WHERE name = %(name)s

-- name: list_users
SELECT name, role, password_hash IS NOT NULL, created_at FROM users ORDER BY name

-- name: remove_user
DELETE FROM users WHERE name = %(name)s RETURNING name

-- name: add_token
INSERT INTO api_tokens (name, role, token_hash, expires_at)
VALUES (%(name)s, %(role)s, %(token_hash)s,
        now() + make_interval(days => %(expires_days)s::int))
ON CONFLICT (name) DO NOTHING
RETURNING name

-- name: token_by_hash
SELECT name, role, token_hash FROM api_tokens
WHERE token_hash = %(token_hash)s AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())

-- name: list_tokens
SELECT name, role, created_at, expires_at, revoked_at FROM api_tokens ORDER BY name

-- name: revoke_token
UPDATE api_tokens SET revoked_at = now() WHERE name = %(name)s AND revoked_at IS NULL RETURNING name

-- name: add_login_link
INSERT INTO login_links (token_hash, user_name, expires_at)
VALUES (%(token_hash)s, %(user_name)s, now() + make_interval(secs => %(seconds)s))

-- name: use_login_link
-- Single use: the first request marks it used, any later one finds nothing.
UPDATE login_links SET used_at = now()
WHERE token_hash = %(token_hash)s AND used_at IS NULL AND expires_at > now()
RETURNING user_name

-- name: add_session
-- Sessions that ended by expiry go at the next sign-in (sign-out deletes its own).
WITH expired AS (DELETE FROM user_sessions WHERE expires_at <= now())
INSERT INTO user_sessions (id_hash, user_name, expires_at)
VALUES (%(id_hash)s, %(user_name)s, now() + make_interval(secs => %(seconds)s))

-- name: session_user
SELECT u.name, u.role, s.id_hash FROM user_sessions s JOIN users u ON u.name = s.user_name
WHERE s.id_hash = %(id_hash)s AND s.expires_at > now()

-- name: end_session
DELETE FROM user_sessions WHERE id_hash = %(id_hash)s

-- name: lock_sign_in_keys
-- Sign-in attempts of one key (`user:NAME`, `address:IP`) are counted one at a time,
-- whichever process takes them: the transaction holds this lock until it commits.
-- Class 7344 (the import engine uses 7342, uploads 7343).
SELECT pg_advisory_xact_lock(7344, hashtext(key)) FROM unnest(%(keys)s::text[]) AS key ORDER BY key

-- name: reserve_attempt
-- Counts an attempt as a failure before its password is checked, unless a key has
-- reached its limit within the window: then nothing is written and `wait` says how
-- long until the oldest failure of the fullest key leaves the window. A sign-in that
-- succeeds takes its attempt back (take_back_attempt).
WITH now AS (SELECT clock_timestamp() AS at),
wanted AS (SELECT * FROM unnest(%(keys)s::text[], %(limits)s::int[]) AS w(key, max_failures)),
recent AS (
    SELECT w.key, w.max_failures, count(f.key) AS failures, min(f.failed_at) AS oldest
    FROM wanted w LEFT JOIN login_failures f
      ON f.key = w.key AND f.failed_at > (SELECT at FROM now) - make_interval(secs => %(window)s)
    GROUP BY w.key, w.max_failures
),
refused AS (
    SELECT max(greatest(1, ceil(extract(epoch FROM
               oldest + make_interval(secs => %(window)s) - (SELECT at FROM now)))))::int AS wait
    FROM recent WHERE failures >= max_failures
),
reserved AS (
    INSERT INTO login_failures (key, failed_at)
    SELECT key, (SELECT at FROM now) FROM wanted
    WHERE NOT EXISTS (SELECT FROM recent WHERE failures >= max_failures)
    RETURNING failed_at
)
SELECT (SELECT wait FROM refused), (SELECT min(failed_at) FROM reserved)

-- name: take_back_attempt
DELETE FROM login_failures WHERE key = ANY(%(keys)s) AND failed_at = %(at)s

-- name: forget_expired_failures
-- Housekeeping at each failed sign-in: used or expired links, failures out of the window.
WITH links AS (DELETE FROM login_links WHERE expires_at <= now() OR used_at IS NOT NULL)
DELETE FROM login_failures WHERE failed_at < clock_timestamp() - make_interval(secs => %(window)s)

-- name: clear_failures
DELETE FROM login_failures WHERE key = %(key)s

-- name: secret
SELECT value FROM app_secrets WHERE name = %(name)s

-- name: add_secret
INSERT INTO app_secrets (name, value) VALUES (%(name)s, %(value)s) ON CONFLICT (name) DO NOTHING
