-- Access control: people, API tokens, one-time sign-in links, browser
-- sessions, and who started a job or edited a customer by hand.
--
-- Only hashes of secrets are stored: argon2id for passwords, SHA-256 for
-- tokens, links and session ids (random 32-byte secrets, so a fast hash
-- is enough: nobody can guess their way back from it).
-- These tables stay on the coordinator under Citus; nothing distributed
-- refers to them by key, names are copied as text (see the last lines).

CREATE TABLE users (
    name          text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9._@-]{1,64}$'),
    role          text NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
    password_hash text,               -- argon2id; null: signs in by one-time link only
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9._@-]{1,64}$'),
    role        text NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
    token_hash  bytea NOT NULL UNIQUE,  -- sha256 of the token
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,            -- null: until revoked
    revoked_at  timestamptz
);

CREATE TABLE login_links (
    token_hash  bytea PRIMARY KEY,
    user_name   text NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);

CREATE TABLE user_sessions (
    id_hash     bytea PRIMARY KEY,      -- sha256 of the id the encrypted cookie holds
    user_name   text NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX user_sessions_expires_at ON user_sessions (expires_at);

-- Failed sign-ins, by user and by address, for the rate limit; shared by
-- every process on the database.
CREATE TABLE login_failures (
    key        text NOT NULL,           -- 'user:NAME' or 'address:IP'
    failed_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX login_failures_key ON login_failures (key, failed_at);

-- Secrets the processes share, made once: the key that encrypts session cookies.
CREATE TABLE app_secrets (
    name   text PRIMARY KEY,
    value  text NOT NULL
);

ALTER TABLE import_jobs ADD COLUMN created_by text;
-- Text, not a foreign key to users: customers may be distributed (Citus) while
-- users stay on the coordinator, and a removed user's edits keep their name.
ALTER TABLE customers ADD COLUMN updated_manually_by text;

-- The job JSON gains created_by. Wrapping whatever import_job_json is by now
-- (earlier migrations may have changed it) keeps their fields as they are.
ALTER FUNCTION import_job_json(import_jobs) RENAME TO import_job_json_before_008;
CREATE FUNCTION import_job_json(j import_jobs) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT import_job_json_before_008(j) || jsonb_build_object('created_by', j.created_by)
$$;
