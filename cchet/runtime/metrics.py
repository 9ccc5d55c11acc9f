"""Ray dashboard metrics for cchet: bytes sealed and opened, attestations, refusals.

Four counters through ``ray.util.metrics`` (Prometheus adds Ray's ``ray_`` prefix), each tagged ``where``
(``driver`` or ``worker``):

* ``cchet_bytes_sealed`` / ``cchet_bytes_opened``: plaintext bytes of values sealed into, or opened from, Ray
  (arguments, results, diagnostics, ``cchet.put``, ``cchet.get``);
* ``cchet_attestations`` (tag ``verdict``: ``accepted`` or ``rejected``): in the driver, node-agent appraisals;
  in a worker, its attestations to the broker;
* ``cchet_refusals`` (tag ``kind``: ``placement``, ``key_release``, ``integrity``): a task no attested node could
  run, a key the broker would not release, a sealed value that failed to open.

The counters are created on first use in each process, never at import (importing this module imports no
Ray). Counting holds no secret: sizes and verdicts only, which Ray's data plane sees anyway. Every process also
keeps its own running totals (:func:`totals`), exact at all times, so a driver or a notebook can read them
without a metrics scrape. Byte counts reach Ray's counters in batches, at most every
:data:`FLUSH_INTERVAL_S` (a counter update costs tens of microseconds, more than sealing a small value);
attestations and refusals go at once, with whatever is pending. Recording never raises: a metrics failure is
logged once and the work goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from cchet.errors import KeyReleaseDenied

if TYPE_CHECKING:
    from cchet.broker.client import BrokerClient, ReleasedKeys

__all__ = [
    "COUNTERS",
    "FLUSH_INTERVAL_S",
    "attestation",
    "bytes_opened",
    "bytes_sealed",
    "counted_release",
    "counter",
    "flush",
    "refusal",
    "totals",
]

log = logging.getLogger("cchet.runtime")

COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "cchet_bytes_sealed": ("Plaintext bytes cchet sealed into Ray (arguments, results, puts)", ("where",)),
    "cchet_bytes_opened": ("Plaintext bytes cchet opened from Ray (arguments, results, gets)", ("where",)),
    "cchet_attestations": ("Attestations appraised (driver: node agents; worker: key requests)", ("where", "verdict")),
    "cchet_refusals": ("Refusals: placement, key release, integrity", ("where", "kind")),
}

FLUSH_INTERVAL_S = 1.0

_lock = threading.Lock()
_counters: dict[str, Any] = {}
_totals: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
_pending: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
_flushed = 0.0
_warned = False


def counter(name: str) -> Any:
    """The ``ray.util.metrics.Counter`` called ``name`` in this process, created on first use.

    Raises ``KeyError`` for a name not in :data:`COUNTERS`.
    """
    description, tag_keys = COUNTERS[name]
    with _lock:
        made = _counters.get(name)
        if made is None:
            from ray.util.metrics import Counter

            made = _counters[name] = Counter(name, description=description, tag_keys=tag_keys)
        return made


def _where() -> str:
    from cchet.runtime.environment import in_worker

    return "worker" if in_worker() else "driver"


def _record(name: str, value: float, *, now: bool = False, **tags: str) -> None:
    if value <= 0:
        return
    key = (name, tuple(sorted({"where": _where(), **tags}.items())))
    with _lock:
        _totals[key] = _totals.get(key, 0) + value
        _pending[key] = _pending.get(key, 0) + value
        due = now or time.monotonic() - _flushed >= FLUSH_INTERVAL_S
    if due:
        flush()


def flush() -> None:
    """Hand every pending count to Ray's counters now."""
    global _warned, _flushed  # noqa: PLW0603 - process-wide state
    with _lock:
        pending = list(_pending.items())
        _pending.clear()
        _flushed = time.monotonic()
    for (name, tags), value in pending:
        try:
            counter(name).inc(value, tags=dict(tags))
        except Exception:  # metrics must never break a confidential call
            if not _warned:
                _warned = True
                log.warning("cchet: recording the metric %s failed; metrics from this process may be missing", name)


def bytes_sealed(nbytes: int) -> None:
    """Count ``nbytes`` of plaintext sealed in this process."""
    _record("cchet_bytes_sealed", nbytes)


def bytes_opened(nbytes: int) -> None:
    """Count ``nbytes`` of plaintext opened in this process."""
    _record("cchet_bytes_opened", nbytes)


def attestation(accepted: bool) -> None:
    """Count one appraised attestation and its verdict."""
    _record("cchet_attestations", 1, now=True, verdict="accepted" if accepted else "rejected")


def refusal(kind: str) -> None:
    """Count one refusal: ``placement``, ``key_release`` or ``integrity``. ``ValueError`` for another kind."""
    if kind not in ("placement", "key_release", "integrity"):
        raise ValueError(f"refusal kind is 'placement', 'key_release' or 'integrity', not {kind!r}")
    _record("cchet_refusals", 1, now=True, kind=kind)


def counted_release(client: BrokerClient, key_ids: Iterable[bytes], **request: Any) -> ReleasedKeys:
    """``client.keys(key_ids, **request)`` in a worker, counting an attestation when the client attested (a
    cached release counts nothing) and a ``key_release`` refusal when the broker refused. A client without an
    ``attestations`` count (a test double) counts refusals only. Raises what ``client.keys`` raises."""
    before = getattr(client, "attestations", 0)
    try:
        released = client.keys(key_ids, **request)
    except KeyReleaseDenied:
        attestation(False)
        refusal("key_release")
        raise
    if getattr(client, "attestations", 0) != before:
        attestation(True)
    return released


def totals() -> dict[str, float]:
    """What this process recorded so far, keyed ``name{tag=value,...}`` (Prometheus style, without Ray's
    ``ray_`` prefix)."""
    with _lock:
        items = list(_totals.items())
    return {f"{name}{{{','.join(f'{k}={v}' for k, v in tags)}}}": value for (name, tags), value in sorted(items)}
