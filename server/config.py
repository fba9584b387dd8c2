"""Configuration: one frozen object, read from the environment once at start."""
from __future__ import annotations

import dataclasses
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
    # The import engine's bounds besides bytes (docs/limits.md): a batch of tiny rows
    # or tiny rejects stays small in memory, and a pause or cancel is noticed quickly.
    batch_rows: int = 100_000
    batch_rejects: int = 10_000
    control_poll_seconds: float = 0.5

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
            # Rows and rejects a batch may hold, whatever its bytes.
            batch_rows=_int(env, "IMPORT_BATCH_ROWS", cls.batch_rows, low=100),
            batch_rejects=_int(env, "IMPORT_BATCH_REJECTS", cls.batch_rejects, low=1),
            # How often a running import looks for a pause or cancel in the middle of a batch.
            control_poll_seconds=_float(env, "IMPORT_CONTROL_POLL_SECONDS", cls.control_poll_seconds),
        )


def _database_url(env: Mapping[str, str]) -> str | None:
    url = env.get("DATABASE_URL") or None
    if url is not None and urlsplit(url).scheme not in ("postgres", "postgresql"):
        raise ConfigError("DATABASE_URL must be a postgresql:// URL")
    return url


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
