"""Single-use challenge nonces: 32 random bytes, at most 60 s old, each tied to the request it answers.

A nonce is consumed by the first attempt to use it, whether that attempt succeeds or not, so evidence can
never be replayed against it; a nonce issued for one request digest cannot serve another.
"""

from __future__ import annotations

import hmac
import os
import threading
import time
from collections.abc import Callable

__all__ = ["NONCE_SIZE", "NONCE_TTL_S", "NonceRegistry"]

NONCE_SIZE = 32
NONCE_TTL_S = 60.0


class NonceRegistry:
    """Outstanding nonces, thread-safe. Expired nonces are purged as new ones are issued."""

    def __init__(self, *, ttl_s: float = NONCE_TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < ttl_s <= NONCE_TTL_S:
            raise ValueError(f"nonce lifetime must be in (0, {NONCE_TTL_S}] seconds")
        self._ttl = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._outstanding: dict[bytes, tuple[bytes, float]] = {}

    def issue(self, request_digest: bytes) -> bytes:
        """A fresh nonce bound to ``request_digest``."""
        nonce = os.urandom(NONCE_SIZE)
        now = self._clock()
        with self._lock:
            for stale in [n for n, (_, t) in self._outstanding.items() if now - t > self._ttl]:
                del self._outstanding[stale]
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
