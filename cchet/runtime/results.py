"""Opening what a call returned -- the one path the driver (``cchet.get``) and a consuming worker both take.

A result is opened only as the object its :class:`~cchet.runtime.sealedref.Descriptor` says it must be: the
result frame's sealed parts must name the descriptor's key (or the successor the broker rotated it to), and
they open only under the contexts the descriptor's session, producer, call and slot give. So an object swapped
in the store, replayed from another call or session, or sealed under another key than the call asked for
raises :class:`~cchet.IntegrityError`. A ``FAULT`` frame -- the worker failed before it held any key -- is not
authenticated: it becomes the matching cchet error with the worker's text marked as its unauthenticated report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cchet.errors import BrokerError, CchetError, IntegrityError, KeyReleaseDenied, PlacementError, RayFailure
from cchet.hazmat.keys import DataKey
from cchet.runtime.contexts import PUT_DIGEST, Role, context
from cchet.runtime.diagnostics import raised, replay
from cchet.runtime.frames import Fault, Status, read_result_frame
from cchet.runtime.sealedref import Descriptor
from cchet.runtime.values import HOST, Placement, frame_key_id, open_value

__all__ = ["KeyFor", "fault_error", "open_result"]

KeyFor = Callable[[bytes, bytes], DataKey]  # (key id the descriptor names, key id the frame names) -> key
_UNAUTHENTICATED = " (reported by the worker before it held any key; not authenticated)"


def fault_error(kind: int, text: str) -> CchetError:
    """The cchet error a ``FAULT`` report stands for."""
    if kind == Fault.DENIED:
        return KeyReleaseDenied([line for line in text.splitlines() if line] or ["no reason given"])
    if kind == Fault.BROKER:
        return BrokerError(text + _UNAUTHENTICATED)
    if kind == Fault.INTEGRITY:
        return IntegrityError(text + _UNAUTHENTICATED if text else None)
    if kind == Fault.REQUIREMENTS:
        return PlacementError(text + _UNAUTHENTICATED)
    if kind == Fault.RAY:
        name, _, message = text.partition(": ")
        return RayFailure(name, message + _UNAUTHENTICATED)
    return CchetError(text + _UNAUTHENTICATED)


def _open(key_for: KeyFor, expected: bytes, frame: memoryview, ctx: bytes, placement: Placement = HOST) -> Any:
    return open_value(key_for(expected, frame_key_id(frame)), frame, ctx, placement)


def open_result(
    data: memoryview,
    descriptor: Descriptor,
    key_for: KeyFor,
    *,
    replay_as: str | None = None,
    placement: Placement = HOST,
) -> Any:
    """Open the object a descriptor names, its arrays where ``placement`` says. ``replay_as`` (the driver)
    prints the producer's output and re-logs its records under that label first; a consuming worker passes
    None. Raises the producer's exception, :class:`~cchet.IntegrityError`, or the error a fault report stands
    for."""
    d = descriptor
    if d.producer_digest == PUT_DIGEST:
        return _open(key_for, d.key_id, data, d.context(), placement)
    frame = read_result_frame(data)
    if frame.status == Status.FAULT:
        raise fault_error(frame.fault, frame.text)
    assert frame.value is not None
    if frame.status == Status.OK:
        opened = _open(key_for, d.key_id, frame.value, d.context(), placement)
        if not (isinstance(opened, tuple) and len(opened) == 2):
            raise IntegrityError()
        value, outcome = opened
    else:
        value, outcome = (
            None,
            _open(key_for, d.key_id, frame.value, context(Role.DIAG, d.session_id, d.producer_digest, d.call_id)),
        )
    error = raised(outcome)
    if replay_as is not None:
        replay(outcome, replay_as)
    if error is not None:
        raise error
    if frame.status != Status.OK:
        raise IntegrityError()  # an ERROR frame without an error
    return value
