-- Resumable uploads (tus 1.0.0 at /uploads): one row per upload, from its
-- creation until it is imported, deleted by its client, or swept when it expires.
-- The bytes live in IMPORT_DIR/uploads/<id>.part, renamed <id>.csv once complete.

CREATE TABLE uploads (
    id        text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{32}$'),  -- the last part of its tus URL
    filename  text NOT NULL,                  -- the name people know the file by
    size      bigint NOT NULL CHECK (size >= 0),            -- Upload-Length
    "offset"  bigint NOT NULL DEFAULT 0 CHECK ("offset" BETWEEN 0 AND size),  -- bytes stored (fsynced)
    metadata  text,                           -- Upload-Metadata as the client sent it
    owner     text,                           -- who created it (null without a signed-in user)
    created   timestamptz NOT NULL DEFAULT now(),
    expires   timestamptz NOT NULL,           -- Upload-Expires; moved on by every PATCH
    sha256    text CHECK (sha256 IS NULL OR "offset" = size)  -- hex, once complete
);

-- The sweep looks for what has expired.
CREATE INDEX uploads_expires ON uploads (expires);
