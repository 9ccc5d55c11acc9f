"""Per-client rate limiting for the broker's HTTP server: a token bucket per remote address.

Every protocol message (challenge or release) from an address takes one token from its bucket; a bucket holds
at most ``burst`` tokens and refills at ``per_second``. A message that finds its bucket empty is answered with
HTTP 429 and ``Retry-After`` (the seconds until a token is back) before the body is read, so a flood of
challenges costs the broker neither an appraisal nor an audit record. Defaults: :data:`RATE_PER_S` and
:data:`RATE_BURST`, enough for a node's workers starting their first calls together.

The table of buckets is bounded by :data:`MAX_CLIENTS`; past it the least recently seen address is forgotten,
which at worst gives that address a full bucket early.

What it does not do: the address is the TCP peer as the server sees it, so behind a proxy every client shares
the proxy's bucket, and a client with many addresses gets a bucket per address (the broker's nonce table stays
bounded regardless, :mod:`cchet.broker.nonces`).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["MAX_CLIENTS", "RATE_BURST", "RATE_PER_S", "RateLimit", "RateLimiter"]

RATE_PER_S = 64.0
"""Messages per second an address may send, sustained (``cchet broker serve --rate-limit``)."""
RATE_BURST = 256
"""Messages an address may send at once after a quiet spell (``cchet broker serve --rate-burst``)."""
MAX_CLIENTS = 65536
"""Addresses whose buckets are remembered at once."""


@dataclass(frozen=True)
class RateLimit:
    """``per_second`` messages a second per address, sustained, and bursts of up to ``burst``."""

    per_second: float = RATE_PER_S
    burst: int = RATE_BURST

    def __post_init__(self) -> None:
        if not self.per_second > 0 or isinstance(self.burst, bool) or not self.burst >= 1:
            raise ValueError(f"a rate limit needs per_second > 0 and burst >= 1, got {self}")


class RateLimiter:
    """Token buckets per client, thread-safe; ``clock`` must not go backwards (default ``time.monotonic``)."""

    def __init__(
        self,
        limit: RateLimit | None = None,
        *,
        capacity: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit or RateLimit()
        self._capacity = capacity
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, when); LRU order

    def acquire(self, client: str) -> int:
        """Take a token for ``client``: 0 when it had one, else the whole seconds until it will (nothing taken)."""
        rate, burst = self.limit.per_second, self.limit.burst
        with self._lock:
            now = self._clock()
            tokens, when = self._buckets.pop(client, (float(burst), now))
            tokens = min(float(burst), tokens + (now - when) * rate)
            wait = 0 if tokens >= 1 else max(1, math.ceil((1 - tokens) / rate))
            self._buckets[client] = (tokens - 1 if wait == 0 else tokens, now)
            if len(self._buckets) > self._capacity:
                self._buckets.popitem(last=False)
        return wait
