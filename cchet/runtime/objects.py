"""``cchet.get`` and ``cchet.put``: open sealed results in the driver, and seal objects into Ray.

Only the data owner's driver (which holds the keys) opens results. A result is opened under the context its
:class:`~cchet.SealedRef` descriptor gives, so an object swapped in the object store, or replayed from
another call or session, raises :class:`~cchet.IntegrityError` instead of returning.
"""

from __future__ import annotations

import os
from typing import Any

from cchet.errors import IntegrityError, PlacementError
from cchet.runtime.contexts import PUT_DIGEST, Role, context
from cchet.runtime.progress import transfer
from cchet.runtime.sealedref import Descriptor, SealedRef
from cchet.runtime.values import key_ids_of, open_value, seal_value

__all__ = ["get", "put"]


def _open(parts: Any, ctx: bytes) -> Any:
    from cchet.runtime.session import current

    ids = key_ids_of(parts) if isinstance(parts, list) and parts else set()
    if len(ids) != 1:
        raise IntegrityError()
    return open_value(current().key(next(iter(ids))), parts, ctx)


def _resolve(ref: SealedRef, raw: Any) -> Any:
    from cchet.runtime.worker import replay_outcome

    d = ref.descriptor
    if d.producer_digest == PUT_DIGEST:
        return _open(raw, d.context())
    if not (isinstance(raw, tuple) and len(raw) == 2):
        raise IntegrityError()
    result, diag = raw
    outcome = _open(diag, context(Role.DIAG, d.session_id, d.producer_digest, d.call_id))
    error = replay_outcome(outcome, f"cchet task {d.call_id.hex()[:8]}")
    if error is not None:
        raise error
    return _open(result, d.context())


def get(refs: SealedRef | list[SealedRef], *, timeout: float | None = None) -> Any:
    """Wait for and open one :class:`~cchet.SealedRef` (or a list). Prints the task's captured output,
    re-logs its log records, and re-raises its exception (with the remote traceback as a note)."""
    import ray

    single = isinstance(refs, SealedRef)
    items: list[Any] = [refs] if single else list(refs)
    for r in items:
        if not isinstance(r, SealedRef):
            raise TypeError(f"cchet.get takes SealedRefs (from .remote() or cchet.put), got {type(r).__name__}")
    try:
        raw = ray.get([r.ref for r in items], timeout=timeout)
    except ray.exceptions.TaskUnschedulableError as e:
        raise PlacementError(f"Ray could not schedule the task on any qualifying node (they left or died): {e}") from e
    with transfer("cchet.get"):  # a progress bar past 64 MiB in interactive sessions
        values = [_resolve(r, v) for r, v in zip(items, raw, strict=True)]
    return values[0] if single else values


def put(value: Any) -> SealedRef:
    """Seal ``value`` under the session's job key into Ray's object store; pass the ref to tasks."""
    import ray

    from cchet.runtime.session import current

    session = current()
    call_id = os.urandom(16)
    descriptor = Descriptor(session.session_id, PUT_DIGEST, call_id, 0, session.job_key.key_id)
    with transfer("cchet.put"):
        parts = seal_value(session.job_key, value, descriptor.context())
    return SealedRef(ray.put(parts), descriptor)
