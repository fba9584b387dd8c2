"""Configuration: one frozen object, read from the environment once at start.

Each setting is declared once, below: its field, environment variable, default,
kind (the values it takes) and one line of doc. `from_env` reads them all, and
`python -m server config-doc --write docs/configuration.md` writes that page's
tables from the same declarations (tests/test_foundation.py keeps it in step).

A new setting is one more line in its section, for example
    sse_max_streams: int = setting(EDGE, "SSE_MAX_STREAMS", 2000, Whole(low=1),
                                   "open `/import/events` streams per process; one more gets 503")
then `./run.sh config-doc --write docs/configuration.md`. The kinds are in server/settings.py.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from .settings import (Addresses, BaseUrl, Bytes, Choice, ConfigError, DatabaseUrl, Flag, Folder, HostNames,
                       Origins, Positive, Section, Text, Whole, markdown, read, setting)

__all__ = ["Config", "ConfigError", "configuration_tables"]

FILES = Section("Database and files")
ENGINE = Section("The import engine", "limits.md")
UPLOADS = Section("Uploads", "uploads.md")
ACCESS = Section("Access", "access.md")
EDGE = Section("The HTTP edge: what one process takes on, and how long it waits", "http-limits.md")
OPERATIONS = Section("Operations", "operations.md")
SEARCH = Section("The search index during large imports", "scaling.md")
HISTORY = Section("History and undo", "history.md")
SECONDS = Positive()


@dataclasses.dataclass(frozen=True)
class Config:
    database_url: str | None = setting(
        FILES, "DATABASE_URL", None, DatabaseUrl(),
        "the PostgreSQL to use; without it, an embedded one with its data in `DATA_DIR/pgdata`")
    database_read_url: str | None = setting(
        FILES, "DATABASE_READ_URL", None, DatabaseUrl(),
        "a streaming standby for customer reads (docs/scaling.md); unreachable: reads go to the primary")
    host: str = setting(FILES, "HOST", "127.0.0.1", Text("host name or address"), "where `serve` listens (also `serve --host`)")
    port: int = setting(FILES, "PORT", 8080, Whole(low=0, high=65535), "the port `serve` listens on (also `--port`)")
    data_dir: Path = setting(FILES, "DATA_DIR", Path("var"), Folder(),
                             "the embedded database and benchmark files")
    import_dir: Path = setting(
        FILES, "IMPORT_DIR", Path("var/imports"), Folder(under="data_dir", leaf="imports"),
        "uploads land in `IMPORT_DIR/uploads`; `POST /import {\"path\": ...}` may name any file inside it")
    # The import engine.
    reject_limit: int = setting(ENGINE, "REJECT_LIMIT", 10_000, Whole(low=0),
                                "more rejected rows than this fail the job (what was committed stays)")
    # A batch is held in memory a few times over (parsed, copied, and as the search
    # triggers' transition table, whose work_mem is 3 batches).
    batch_bytes: int = setting(ENGINE, "IMPORT_BATCH_BYTES", 8 * 1024**2, Bytes(low=64 * 1024, high=256 * 1024**2),
                               "bytes of file per batch (one transaction each)")
    batch_rows: int = setting(ENGINE, "IMPORT_BATCH_ROWS", 100_000, Whole(low=100),
                              "rows a batch may hold, whatever its bytes")
    batch_rejects: int = setting(ENGINE, "IMPORT_BATCH_REJECTS", 10_000, Whole(low=1),
                                 "rejects a batch may hold, whatever its bytes")
    max_record_bytes: int = setting(ENGINE, "MAX_RECORD_BYTES", 1024**2, Bytes(low=1024),
                                    "a longer record is rejected, never buffered without end")
    # Parallel pipelines (docs/design.md, "The pipelines"): each a parse process and a
    # PostgreSQL connection of its own, over record-aligned ranges of the file.
    import_workers: int = setting(ENGINE, "IMPORT_WORKERS", 0, Whole(low=0, high=256),
                                  "pipelines per import, each a parse process and a connection (0: one per core)")
    range_bytes: int = setting(ENGINE, "IMPORT_RANGE_BYTES", 64 * 1024**2, Bytes(low=64 * 1024),
                               "a file is cut into ranges of about this size (at least one per pipeline)")
    worker_poll_seconds: float = setting(ENGINE, "WORKER_POLL_SECONDS", 2.0, SECONDS,
                                         "how often a process looks for a job to take over")
    control_poll_seconds: float = setting(ENGINE, "IMPORT_CONTROL_POLL_SECONDS", 0.5, SECONDS,
                                          "how often a running import looks for a pause or cancel within a batch")
    file_wait_seconds: float = setting(
        ENGINE, "IMPORT_FILE_WAIT_SECONDS", 300.0, SECONDS,
        "a job whose file no process sees (IMPORT_DIR need not be shared) waits this long, then fails")
    # Uploads, multipart and resumable (tus): the size cap, free-space floor and
    # concurrency cap are the same for both.
    upload_max_bytes: int = setting(UPLOADS, "UPLOAD_MAX_BYTES", 50 * 1024**3, Bytes(low=1),
                                    "larger uploads get 413")
    upload_min_free_bytes: int = setting(UPLOADS, "UPLOAD_MIN_FREE_BYTES", 1024**3, Bytes(low=0),
                                         "free space an upload must leave in IMPORT_DIR, else 507")
    uploads_max_concurrent: int = setting(UPLOADS, "UPLOADS_MAX_CONCURRENT", 4, Whole(low=1),
                                          "uploads at once per process; one more gets 429 with Retry-After")
    uploads_max_per_user: int = setting(
        UPLOADS, "UPLOADS_MAX_PER_USER", 20, Whole(low=1),
        "unfinished uploads (tus, kept previews) one user or token may hold; one more gets 429")
    # History and undo.
    history_days: int = setting(HISTORY, "HISTORY_DAYS", 90, Whole(low=1),
                                "days of customer history kept; an older import cannot be undone")
    history_prune_seconds: float = setting(HISTORY, "HISTORY_PRUNE_SECONDS", 3600.0, SECONDS,
                                           "how often history older than HISTORY_DAYS is pruned, in slices")
    undo_slice_rows: int = setting(HISTORY, "UNDO_SLICE_ROWS", 5_000, Whole(low=1),
                                   "customers an undo takes back per transaction (each with its checkpoint)")
    upload_stall_seconds: float = setting(UPLOADS, "UPLOAD_STALL_SECONDS", 60.0, SECONDS,
                                          "an upload body that sends nothing (or a trickle) this long gets 408")
    multipart_max_parts: int = setting(UPLOADS, "MULTIPART_MAX_PARTS", 16, Whole(low=1, high=1000),
                                       "form fields allowed before the file field (each costs loop time)")
    tus_expire_seconds: float = setting(UPLOADS, "TUS_EXPIRE_SECONDS", 24 * 3600.0, SECONDS,
                                        "a resumable upload untouched this long is swept")
    tus_sweep_seconds: float = setting(UPLOADS, "TUS_SWEEP_SECONDS", 300.0, SECONDS, "how often the sweep looks")
    tus_page_chunk_bytes: int = setting(UPLOADS, "TUS_PAGE_CHUNK_BYTES", 16 * 1024**2,
                                        Bytes(low=64 * 1024, high=1024**3),
                                        "the page's PATCH size: what a dropped connection costs")
    # Access.
    auth_cache_seconds: float = setting(
        ACCESS, "AUTH_CACHE_SECONDS", 5, Whole(low=0, high=300),
        "how long a process remembers whose a token or session is (0: off); revocation takes as long")
    allowed_hosts: tuple[str, ...] = setting(
        ACCESS, "ALLOWED_HOSTS", (), HostNames(),
        "Host names answered (400 for others); none: the listening name, plus loopback names")
    cors_origins: tuple[str, ...] = setting(ACCESS, "CORS_ORIGINS", (), Origins(),
                                            "origins whose pages may call the API with credentials")
    session_max_age: int = setting(ACCESS, "SESSION_MAX_AGE", 12 * 3600, Whole(low=60),
                                   "seconds a browser session lasts after sign-in")
    login_max_failures: int = setting(ACCESS, "LOGIN_MAX_FAILURES", 5, Whole(low=1),
                                      "failed sign-ins per user within the window, then 429")
    login_max_failures_per_address: int = setting(ACCESS, "LOGIN_MAX_FAILURES_PER_ADDRESS", 20, Whole(low=1),
                                                  "the same, per client address")
    login_window_seconds: int = setting(ACCESS, "LOGIN_WINDOW_SECONDS", 15 * 60, Whole(low=1),
                                        "the window those failures are counted in")
    public_url: str | None = setting(ACCESS, "PUBLIC_URL", None, BaseUrl(),
                                     "base of printed sign-in links (default `http://HOST:PORT`); "
                                     "`https://` makes the session cookie Secure")
    # Off where stdout is kept (a journal, a log pipeline): its readers could sign in as admin.
    sign_in_link_on_start: bool = setting(ACCESS, "SIGN_IN_LINK_ON_START", True, Flag(),
                                          "`serve` prints a one-time admin sign-in link on every start")
    # The HTTP edge.
    sse_max_streams: int = setting(EDGE, "SSE_MAX_STREAMS", 2000, Whole(low=1),
                                   "open `/import/events` streams per process; one more gets 503 with Retry-After")
    sse_max_streams_per_user: int = setting(
        EDGE, "SSE_MAX_STREAMS_PER_USER", 10, Whole(low=1),
        "of those, the streams one user or token may hold; one more gets 429 with Retry-After")
    sse_send_timeout_seconds: float = setting(EDGE, "SSE_SEND_TIMEOUT_SECONDS", 10.0, SECONDS,
                                              "a stream whose client takes longer to accept an event is dropped")
    exports_max_concurrent: int = setting(EDGE, "EXPORTS_MAX_CONCURRENT", 4, Whole(low=1),
                                          "`/customers.csv` downloads at once per process; one more gets 429")
    # Longer than nginx's idle upstream keep-alive (60 s): it never sends on a connection we are closing.
    request_header_timeout_seconds: float = setting(
        EDGE, "REQUEST_HEADER_TIMEOUT_SECONDS", 75.0, SECONDS,
        "a request head not complete this long after the connection opened (or its last answer) closes it; "
        "so does a keep-alive connection idle as long")
    request_body_timeout_seconds: float = setting(
        EDGE, "REQUEST_BODY_TIMEOUT_SECONDS", 60.0, SECONDS,
        "a request body (not an upload) not complete this long after its head gets 408")
    # Operations.
    log_format: str = setting(OPERATIONS, "LOG_FORMAT", "plain", Choice(("plain", "json")),
                              "logs for people, or for a log pipeline (one JSON object a line)")
    log_level: str = setting(OPERATIONS, "LOG_LEVEL", "INFO", Choice(("DEBUG", "INFO", "WARNING", "ERROR")),
                             "the least important records written")
    trusted_proxies: tuple[str, ...] = setting(
        OPERATIONS, "TRUSTED_PROXIES", (), Addresses(),
        "the proxies in front (nginx: `127.0.0.1`): their X-Forwarded-For and -Proto are believed")
    # TCP keepalives on the connection that writes a job, both ends: a job whose host
    # vanished loses its lock (and is taken over) after idle + interval x count seconds.
    keepalive_idle_seconds: int = setting(OPERATIONS, "DB_KEEPALIVE_IDLE_SECONDS", 10, Whole(low=1, high=3600),
                                          "the job's database connection: quiet this long, then TCP probes")
    keepalive_interval_seconds: int = setting(OPERATIONS, "DB_KEEPALIVE_INTERVAL_SECONDS", 5,
                                              Whole(low=1, high=600), "seconds between probes")
    keepalive_count: int = setting(OPERATIONS, "DB_KEEPALIVE_COUNT", 3, Whole(low=1, high=100),
                                   "unanswered probes, then the connection is dead")
    # An import that will add at least this share of customer_search's rows, and at
    # least this many, drops the trigram index after its first batch and builds it again
    # in bulk, with this much memory, before the job ends.
    search_rebuild_share: float = setting(SEARCH, "IMPORT_SEARCH_REBUILD_SHARE", 0.3, Positive(),
                                          "share of the search table's rows an import must add to rebuild")
    search_rebuild_min_rows: int = setting(SEARCH, "IMPORT_SEARCH_REBUILD_MIN_ROWS", 200_000, Whole(low=0),
                                           "and at least this many rows")
    search_build_memory_mb: int = setting(SEARCH, "IMPORT_SEARCH_BUILD_MEMORY_MB", 256, Whole(low=1, high=64 * 1024),
                                          "memory (MB) the index build may use")

    @property
    def pgdata(self) -> Path:
        """Where the embedded PostgreSQL keeps its cluster (unused with DATABASE_URL)."""
        return self.data_dir / "pgdata"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Config:
        """Every setting from `env`; a bad value raises ConfigError naming its variable."""
        return cls(**read(dataclasses.fields(cls), env))


def configuration_tables() -> str:
    """docs/configuration.md's tables, as the declarations above say."""
    return markdown(dataclasses.fields(Config))
