"""Single-use challenge nonces: 32 random bytes, at most 60 s old, each tied to the request it answers.

A nonce is consumed by the first attempt to use it, whether that attempt succeeds or not, so evidence can
never be replayed against it; a nonce issued for one request digest cannot serve another.

The table of outstanding nonces is bounded by :data:`MAX_OUTSTANDING` (an entry takes about 300 bytes, so the
table at most about 19 MiB). Issuing first drops the expired nonces, oldest first; when the table is still full
the challenge is refused with :class:`~cchet.BrokerBusy`, saying when the oldest nonce expires. Unexpired nonces
are never evicted: a flood of challenges can delay new workers, never invalidate a challenge already answered.
"""

from __future__ import annotations

import hmac
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from cchet.errors import BrokerBusy

__all__ = ["MAX_OUTSTANDING", "NONCE_SIZE", "NONCE_TTL_S", "NonceRegistry"]

NONCE_SIZE = 32
NONCE_TTL_S = 60.0
MAX_OUTSTANDING = 65536
"""Nonces issued and neither used nor expired, at most (the default of ``NonceRegistry(capacity=...)``)."""


class NonceRegistry:
    """Outstanding nonces, thread-safe, at most ``capacity`` of them. ``clock`` must not go backwards (the
    default is ``time.monotonic``): nonces expire in the order they were issued."""

    def __init__(
        self,
        *,
        ttl_s: float = NONCE_TTL_S,
        capacity: int = MAX_OUTSTANDING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < ttl_s <= NONCE_TTL_S:
            raise ValueError(f"nonce lifetime must be in (0, {NONCE_TTL_S}] seconds")
        if capacity < 1:
            raise ValueError("the nonce table needs room for at least one nonce")
        self._ttl = ttl_s
        self._capacity = capacity
        self._clock = clock
        self._lock = threading.Lock()
        self._outstanding: OrderedDict[bytes, tuple[bytes, float]] = OrderedDict()  # in the order issued

    def issue(self, request_digest: bytes) -> bytes:
        """A fresh nonce bound to ``request_digest``. Raises :class:`~cchet.BrokerBusy` when ``capacity``
        nonces are outstanding and none has expired."""
        nonce = os.urandom(NONCE_SIZE)
        with self._lock:
            now = self._clock()
            while self._outstanding and now - next(iter(self._outstanding.values()))[1] > self._ttl:
                self._outstanding.popitem(last=False)
            if len(self._outstanding) >= self._capacity:
                oldest = next(iter(self._outstanding.values()))[1]
                wait = math.ceil(self._ttl - (now - oldest))
                raise BrokerBusy(
                    f"the broker has {len(self._outstanding)} challenges outstanding, its limit; retry after "
                    f"{wait} s, when the oldest expires",
                    wait,
                )
            self._outstanding[nonce] = (request_digest, now)
        return nonce

    def consume(self, nonce: bytes, request_digest: bytes) -> tuple[list[str], float]:
        """Use ``nonce`` up; returns the reasons it is not acceptable (empty when it is) and its age in
        seconds (0 for an unknown nonce)."""
        with self._lock:
            entry = self._outstanding.pop(bytes(nonce), None)
        if entry is None:
            return ["nonce unknown or already used (each nonce serves one attempt)"], 0.0
        digest, issued = entry
        reasons = []
        age = self._clock() - issued
        if age > self._ttl:
            reasons.append(f"nonce expired (older than {self._ttl:g} s)")
        if not hmac.compare_digest(digest, request_digest):
            reasons.append("nonce was issued for another request")
        return reasons, age

    def __len__(self) -> int:
        with self._lock:
            return len(self._outstanding)
