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

-- name: forget_expired
-- Housekeeping at each failed sign-in: used or expired links, failures out of the window.
WITH links AS (DELETE FROM login_links WHERE expires_at <= now() OR used_at IS NOT NULL)
DELETE FROM login_failures WHERE failed_at < clock_timestamp() - make_interval(secs => %(window)s)

-- name: recent_failures
-- For each key: failures within the window, and when the oldest of them leaves it.
SELECT key, count(*),
       ceil(extract(epoch FROM min(failed_at) + make_interval(secs => %(window)s) - clock_timestamp()))::int
FROM login_failures
WHERE key = ANY(%(keys)s) AND failed_at > clock_timestamp() - make_interval(secs => %(window)s)
GROUP BY key

-- name: add_failure
INSERT INTO login_failures (key) SELECT unnest(%(keys)s::text[])

-- name: clear_failures
DELETE FROM login_failures WHERE key = %(key)s

-- name: secret
SELECT value FROM app_secrets WHERE name = %(name)s

-- name: add_secret
INSERT INTO app_secrets (name, value) VALUES (%(name)s, %(value)s) ON CONFLICT (name) DO NOTHING
