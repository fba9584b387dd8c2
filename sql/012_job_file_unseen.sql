-- Several hosts: an upload lands on one host's disk, yet any process may claim
-- its job. A process that cannot see the file leaves the job to one that can,
-- and notes since when no process has (server/importer/hosts.py); the job
-- fails "no longer there" only when that lasts IMPORT_FILE_WAIT_SECONDS.
-- A new nullable column: a process of the previous release ignores it.
ALTER TABLE import_jobs ADD COLUMN file_unseen_since timestamptz;
