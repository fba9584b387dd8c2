"""Who a token or a session cookie belongs to, remembered for AUTH_CACHE_SECONDS.

Every API request used to look its token or session up in the database: a keyset
page cost twice what it did before access control (3.4 ms against 1.7 ms). A
process now keeps what it found for a short time, so a client that sends many
requests pays for one look-up every AUTH_CACHE_SECONDS.

The price is written down (docs/access.md, docs/scaling.md): a token revoked, a
user removed or a session signed out still opens the door of a process that saw
it in the last AUTH_CACHE_SECONDS, and no longer after that, on every process,
because each entry simply expires; nothing has to reach the other processes. Only
answers that let a request in are kept: an unknown token is asked about every
time, so a token made a moment ago works at once. 0 turns the cache off.
"""
from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from .roles import Principal

# A process sees a few hundred clients; this bounds memory against a flood of tokens.
MAX_ENTRIES = 10_000


class AccessCache:
    def __init__(self, seconds: float, *, max_entries: int = MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()

    async def principal(self, kind: str, secret: str,
                        look_up: Callable[[], Awaitable[Principal | None]]) -> Principal | None:
        """The principal for `secret` (a token, a session cookie), from the cache while its
        entry is fresh, else from `look_up()`, whose positive answer is kept."""
        if self.seconds <= 0:
            return await look_up()
        # Hashed, so the process's memory holds no usable secret for longer than a request.
        key = hashlib.sha256(f"{kind}\x00{secret}".encode("utf-8", "surrogatepass")).digest()
        now = self._clock()
        found = self._entries.get(key)
        if found is not None and found[0] > now:
            return found[1]
        self._entries.pop(key, None)
        principal = await look_up()
        if principal is not None:
            self._entries[key] = (now + self.seconds, principal)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)  # the oldest entry: it expires first anyway
        return principal

    def __len__(self) -> int:
        return len(self._entries)
