-- The read standby (DATABASE_READ_URL) as server/replica.py watches it.

-- name: primary_position
-- On the primary: how far its WAL has been written.
SELECT pg_current_wal_lsn() - '0/0'::pg_lsn

-- name: standby_state
-- On the standby: whether it is one, how far it has replayed, and how far behind that
-- is in time (0 when it has replayed all it received; otherwise the age of the last
-- transaction it replayed).
SELECT pg_is_in_recovery(),
       coalesce(pg_last_wal_replay_lsn(), pg_current_wal_lsn()) - '0/0'::pg_lsn,
       CASE WHEN NOT pg_is_in_recovery() OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END
