"""Configuration: one frozen object, read from the environment once at start."""
from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit


class ConfigError(ValueError):
    """A configuration variable has a value the service cannot use."""


@dataclasses.dataclass(frozen=True)
class Config:
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("var")
    import_dir: Path = Path("var/imports")
    upload_max_bytes: int = 50 * 1024**3
    reject_limit: int = 10_000
    batch_bytes: int = 8 * 1024**2
    max_record_bytes: int = 1024**2
    worker_poll_seconds: float = 2.0
    # Resumable (tus) uploads at /uploads; their size cap, free-space floor and
    # concurrency cap are the multipart uploads' (UPLOAD_*).
    tus_expire_seconds: float = 24 * 3600   # an upload untouched this long is swept
    tus_sweep_seconds: float = 300.0        # how often the sweep looks
    tus_page_chunk_bytes: int = 16 * 1024**2  # the page's PATCH size: what a dropped connection costs
    # Access (docs/access.md).
    allowed_hosts: tuple[str, ...] = ()      # Host names answered; () = the listening name (+ loopback names)
    cors_origins: tuple[str, ...] = ()       # origins whose pages may call the API with credentials
    session_max_age: int = 12 * 3600         # seconds a browser session lasts after sign-in
    login_max_failures: int = 5              # failed sign-ins per user within the window, then 429
    login_max_failures_per_address: int = 20  # the same, per client address
    login_window_seconds: int = 15 * 60
    public_url: str | None = None            # base of printed sign-in links; default http://HOST:PORT
    sign_in_link_on_start: bool = True       # `serve` prints a one-time admin link on every start
    # The HTTP edge: what one process accepts at once, and how long it waits on a client.
    uploads_max_concurrent: int = 4
    upload_min_free_bytes: int = 1024**3
    upload_stall_seconds: float = 60.0
    multipart_max_parts: int = 16
    sse_max_streams: int = 2000
    sse_send_timeout_seconds: float = 10.0
    exports_max_concurrent: int = 4
    # The import engine's bounds besides bytes (docs/limits.md): a batch of tiny rows
    # or tiny rejects stays small in memory, and a pause or cancel is noticed quickly.
    batch_rows: int = 100_000
    batch_rejects: int = 10_000
    control_poll_seconds: float = 0.5
    # Operations (docs/operations.md).
    log_format: str = "plain"                # plain | json (one object a line)
    log_level: str = "INFO"
    file_wait_seconds: float = 300.0         # a job whose file no process sees waits this long, then fails
    keepalive_idle_seconds: int = 10         # the job's connection: quiet this long, then TCP probes
    keepalive_interval_seconds: int = 5      # between probes
    keepalive_count: int = 3                 # unanswered probes, then the connection is dead
    trusted_proxies: tuple[str, ...] = ()    # peers whose X-Forwarded-For/-Proto are believed
    # The search index during large imports (docs/scaling.md): an import that will add at
    # least this share of customer_search's rows, and at least this many, drops the trigram
    # index after its first batch and builds it again in bulk, with this much memory, before
    # the job ends.
    search_rebuild_share: float = 0.3
    search_rebuild_min_rows: int = 200_000
    search_build_memory_mb: int = 256
    # Issue 26 (docs/scaling.md): a process remembers whose a token or session is for this
    # long (revocation takes as long to reach it); a standby for customer reads.
    auth_cache_seconds: float = 5.0
    database_read_url: str | None = None

    @property
    def pgdata(self) -> Path:
        """Where the embedded PostgreSQL keeps its cluster (unused with DATABASE_URL)."""
        return self.data_dir / "pgdata"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Config:
        data_dir = _path(env, "DATA_DIR", Path("var"))
        return cls(
            database_url=_database_url(env),
            host=env.get("HOST", cls.host) or cls.host,
            port=_int(env, "PORT", cls.port, low=0, high=65535),
            data_dir=data_dir,
            import_dir=_path(env, "IMPORT_DIR", data_dir / "imports"),
            upload_max_bytes=_int(env, "UPLOAD_MAX_BYTES", cls.upload_max_bytes, low=1),
            reject_limit=_int(env, "REJECT_LIMIT", cls.reject_limit, low=0),
            # A batch is held in memory a few times over (parsed, copied, and as the
            # search triggers' transition table, whose work_mem is 3 batches).
            batch_bytes=_int(env, "IMPORT_BATCH_BYTES", cls.batch_bytes, low=64 * 1024, high=256 * 1024**2),
            max_record_bytes=_int(env, "MAX_RECORD_BYTES", cls.max_record_bytes, low=1024),
            worker_poll_seconds=_float(env, "WORKER_POLL_SECONDS", cls.worker_poll_seconds),
            tus_expire_seconds=_float(env, "TUS_EXPIRE_SECONDS", cls.tus_expire_seconds),
            tus_sweep_seconds=_float(env, "TUS_SWEEP_SECONDS", cls.tus_sweep_seconds),
            tus_page_chunk_bytes=_int(env, "TUS_PAGE_CHUNK_BYTES", cls.tus_page_chunk_bytes,
                                      low=64 * 1024, high=1024**3),
            # Access.
            allowed_hosts=_names(env, "ALLOWED_HOSTS"),
            cors_origins=_origins(env, "CORS_ORIGINS"),
            session_max_age=_int(env, "SESSION_MAX_AGE", cls.session_max_age, low=60),
            login_max_failures=_int(env, "LOGIN_MAX_FAILURES", cls.login_max_failures, low=1),
            login_max_failures_per_address=_int(env, "LOGIN_MAX_FAILURES_PER_ADDRESS",
                                                cls.login_max_failures_per_address, low=1),
            login_window_seconds=_int(env, "LOGIN_WINDOW_SECONDS", cls.login_window_seconds, low=1),
            public_url=_url(env, "PUBLIC_URL", ("http", "https")),
            # Off where stdout is kept (a journal, a log pipeline): its readers could sign in as admin.
            sign_in_link_on_start=_flag(env, "SIGN_IN_LINK_ON_START", cls.sign_in_link_on_start),
            # Uploads at once per process; one more gets 429 with Retry-After.
            uploads_max_concurrent=_int(env, "UPLOADS_MAX_CONCURRENT", cls.uploads_max_concurrent, low=1),
            # Free space an upload must leave in IMPORT_DIR, else 507 (the partial file goes).
            upload_min_free_bytes=_int(env, "UPLOAD_MIN_FREE_BYTES", cls.upload_min_free_bytes, low=0),
            # An upload body that sends nothing for this long is dropped (408).
            upload_stall_seconds=_float(env, "UPLOAD_STALL_SECONDS", cls.upload_stall_seconds),
            # Form fields allowed before the file field; each costs loop time to parse.
            multipart_max_parts=_int(env, "MULTIPART_MAX_PARTS", cls.multipart_max_parts, low=1, high=1000),
            # Open /import/events streams per process; one more gets 503 with Retry-After.
            sse_max_streams=_int(env, "SSE_MAX_STREAMS", cls.sse_max_streams, low=1),
            # A stream whose client takes longer than this to accept an event is dropped.
            sse_send_timeout_seconds=_float(env, "SSE_SEND_TIMEOUT_SECONDS", cls.sse_send_timeout_seconds),
            # /customers.csv downloads at once per process; one more gets 429 with Retry-After.
            exports_max_concurrent=_int(env, "EXPORTS_MAX_CONCURRENT", cls.exports_max_concurrent, low=1),
            # Rows and rejects a batch may hold, whatever its bytes.
            batch_rows=_int(env, "IMPORT_BATCH_ROWS", cls.batch_rows, low=100),
            batch_rejects=_int(env, "IMPORT_BATCH_REJECTS", cls.batch_rejects, low=1),
            # How often a running import looks for a pause or cancel in the middle of a batch.
            control_poll_seconds=_float(env, "IMPORT_CONTROL_POLL_SECONDS", cls.control_poll_seconds),
            # Operations: logs for people (plain) or for a log pipeline (json, one object a line).
            log_format=_choice(env, "LOG_FORMAT", cls.log_format, ("plain", "json")),
            log_level=_choice(env, "LOG_LEVEL", cls.log_level, ("DEBUG", "INFO", "WARNING", "ERROR")),
            # Several hosts: how long a job waits for a process that can see its file
            # (IMPORT_DIR need not be shared) before it fails "no longer there".
            file_wait_seconds=_float(env, "IMPORT_FILE_WAIT_SECONDS", cls.file_wait_seconds),
            # TCP keepalives on the connection that writes a job, both ends: a job whose host
            # vanished loses its lock (and is taken over) after idle + interval x count seconds.
            keepalive_idle_seconds=_int(env, "DB_KEEPALIVE_IDLE_SECONDS", cls.keepalive_idle_seconds,
                                        low=1, high=3600),
            keepalive_interval_seconds=_int(env, "DB_KEEPALIVE_INTERVAL_SECONDS",
                                            cls.keepalive_interval_seconds, low=1, high=600),
            keepalive_count=_int(env, "DB_KEEPALIVE_COUNT", cls.keepalive_count, low=1, high=100),
            # The proxies in front (nginx: 127.0.0.1): their X-Forwarded-For and -Proto are believed.
            trusted_proxies=_addresses(env, "TRUSTED_PROXIES"),
            # When an import rebuilds the search index instead of feeding it row by row.
            search_rebuild_share=_float(env, "IMPORT_SEARCH_REBUILD_SHARE", cls.search_rebuild_share),
            search_rebuild_min_rows=_int(env, "IMPORT_SEARCH_REBUILD_MIN_ROWS", cls.search_rebuild_min_rows,
                                         low=0),
            search_build_memory_mb=_int(env, "IMPORT_SEARCH_BUILD_MEMORY_MB", cls.search_build_memory_mb,
                                        low=1, high=64 * 1024),
            # Issue 26: the access cache (0: off) and the read standby.
            auth_cache_seconds=_int(env, "AUTH_CACHE_SECONDS", 5, low=0, high=300),
            database_read_url=_url(env, "DATABASE_READ_URL", ("postgresql", "postgres")),
        )


def _database_url(env: Mapping[str, str]) -> str | None:
    url = env.get("DATABASE_URL") or None
    if url is not None and urlsplit(url).scheme not in ("postgres", "postgresql"):
        raise ConfigError("DATABASE_URL must be a postgresql:// URL")
    return url


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    for choice in choices:
        if raw.lower() == choice.lower():
            return choice
    raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be on or off (also true/false, yes/no, 1/0), got {env[name]!r}")


def _addresses(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list of IP addresses, as aiohttp reports a peer (request.remote)."""
    items = []
    for item in filter(None, (part.strip() for part in env.get(name, "").split(","))):
        try:
            items.append(str(ipaddress.ip_address(item)))
        except ValueError:
            raise ConfigError(f"{name} holds {item!r}, which is not an IP address") from None
    return tuple(items)


def _names(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list of host names (`*` for any)."""
    items = tuple(item.strip().lower() for item in env.get(name, "").split(",") if item.strip())
    for item in items:
        if item != "*" and not all(c.isalnum() or c in ".-_[]:" for c in item):
            raise ConfigError(f"{name} holds {item!r}, which is not a host name")
    return items


def _origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list of origins, each scheme://host[:port] with nothing after."""
    items = tuple(item.strip().rstrip("/") for item in env.get(name, "").split(",") if item.strip())
    for item in items:
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
            raise ConfigError(f"{name} holds {item!r}; an origin is scheme://host[:port], e.g. https://dash.example.com")
    return items


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    raw = (env.get(name) or "").strip().rstrip("/")
    if not raw:
        return None
    if urlsplit(raw).scheme not in schemes or not urlsplit(raw).netloc:
        raise ConfigError(f"{name} must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
    return raw


def _path(env: Mapping[str, str], name: str, default: Path) -> Path:
    raw = env.get(name)
    if raw is None or raw == "":
        return default.absolute()
    if "\x00" in raw:
        raise ConfigError(f"{name} is not a usable path")
    return Path(raw).expanduser().absolute()


def _int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{name} must be {bounds}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not value > 0:
        raise ConfigError(f"{name} must be greater than 0, got {raw!r}")
    return value
