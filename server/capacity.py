"""What one process takes on at once: slots that refuse at once when full, and open files.

A request beyond a limit is refused straight away (429 or 503 with
Retry-After), never queued: a queue would hold the connection, its buffers
and the client's patience, and the client can retry as well as we can wait.
"""
from __future__ import annotations

import contextlib
import logging
import resource
from collections.abc import Callable, Iterator

from .errors import DomainError

log = logging.getLogger(__name__)


class Busy(DomainError):
    """Every slot of a kind is taken; try again after `retry_after` seconds."""

    status = 429

    def __init__(self, message: str, retry_after: int, status: int | None = None,
                 close_connection: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.close_connection = close_connection  # an upload's body is not wanted
        if status is not None:
            self.status = status

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class Slots:
    """At most `limit` holders at once in this process."""

    def __init__(self, limit: int, refusal: Callable[[int], Busy]):
        self.limit = limit
        self.in_use = 0
        self._refusal = refusal

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        if self.in_use >= self.limit:
            raise self._refusal(self.limit)
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1


def raise_open_files_limit() -> tuple[int, int]:
    """Lift the soft RLIMIT_NOFILE to the hard limit; return (before, after).

    Every connection the server accepts is a file descriptor. Many systems
    start processes with a soft limit of 1,024, so a few hundred idle clients
    (SSE pages, keep-alive sockets) would use up the rest and accept() would
    fail for everyone, /healthz included; the hard limit is what the
    administrator actually allows.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1024 * 1024)
    if wanted > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:  # e.g. macOS caps it below an infinite hard limit
            log.warning("could not raise the open files limit from %s to %s: %s", soft, wanted, exc)
            return soft, soft
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0]
