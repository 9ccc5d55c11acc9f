"""The call envelope: everything that decides a confidential call, sealed, and the clear header that carries it.

:func:`seal_call` is everything the driver does to a call before Ray sees it; it needs no Ray. The sealed
:class:`CallEnvelope` (context ``cchet/v1/call``, session, function identity, call id) names the function
identity, the output key, every key id the call needs and the ``tee``/``gpu`` requirements -- the worker asks
for keys, seals and refuses by these, never by anything in the clear -- and lists each argument: a small value
held in the envelope itself, a large buffer sealed as its own object under its ``arg`` context, or a sealed
ref given by the descriptor of the object it must be. The clear call header (:mod:`cchet.runtime.frames`)
carries the ids that name the contexts and the data owner's call ticket for the broker; the envelope rides in
it when small, else in an object of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cchet.hazmat.keys import DataKey
from cchet.runtime.contexts import Role, context
from cchet.runtime.frames import write_call_header
from cchet.runtime.sealedref import Descriptor, SealedRef
from cchet.runtime.values import OUT_OF_BAND_BYTES, seal_value

__all__ = ["ActorCall", "ArgSlot", "CallEnvelope", "SealedCall", "seal_call"]

INLINE_ENVELOPE_BYTES = 32 << 10  # larger envelopes travel as an object of their own, not in the task spec
CONSTRUCTOR = "__init__"


@dataclass(frozen=True)
class ArgSlot:
    """One argument: ``value`` held inline; ``sealed``, a buffer sealed apart in object ``payload``; ``ref``, a
    sealed ref in object ``payload`` that must be the object ``descriptor`` describes."""

    kind: str
    value: Any = None
    payload: int = -1
    descriptor: Descriptor | None = None


@dataclass(frozen=True)
class ActorCall:
    """Which actor a call is for (16 random bytes the driver picked), its sequence number, and the method
    (``__init__`` for the constructor). ``ordered``: the actor serves one call at a time, so numbers must come
    exactly in order (set by the constructor)."""

    actor_id: bytes
    seq: int
    method: str
    ordered: bool = True


@dataclass(frozen=True)
class CallEnvelope:
    """What decides a confidential call; sealed under the job key, read by the worker after it opens it."""

    function: bytes
    output_key_id: bytes
    key_ids: tuple[bytes, ...]
    tee: str
    gpu: str | None
    args: tuple[ArgSlot, ...]
    kwargs: tuple[tuple[str, ArgSlot], ...]
    actor: ActorCall | None = None
    device_args: bool = False


@dataclass(frozen=True)
class SealedCall:
    """A call ready for Ray: the clear ``header`` and, per object reference, either the ``ObjectRef`` of a
    sealed-ref argument or sealed ``bytes`` to put into the store."""

    call_id: bytes
    header: bytes
    payloads: list[Any]


def _large(value: Any) -> bool:
    """Buffers of 64 KiB or more travel as their own sealed object (sealed from their memory, opened into fresh
    memory without further copies); everything else rides inside the envelope."""
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes >= OUT_OF_BAND_BYTES
    return isinstance(value, bytes | bytearray | memoryview) and len(value) >= OUT_OF_BAND_BYTES


def call_key_ids(
    job_key: DataKey, output_key: DataKey, extra: Iterable[bytes], args: Iterable[Any]
) -> tuple[bytes, ...]:
    """Every key a call needs: the job key (envelope, arguments), the output key, extra keys, and the key of each
    sealed-ref argument."""
    refs = {a.descriptor.key_id for a in args if isinstance(a, SealedRef)}
    return tuple(sorted({job_key.key_id, output_key.key_id, *extra, *refs}))


def seal_call(
    *,
    session_id: bytes,
    function: bytes,
    job_key: DataKey,
    output_key: DataKey,
    key_ids: tuple[bytes, ...],
    tee: str,
    gpu: str | None,
    ticket: bytes,
    args: Iterable[Any],
    kwargs: Mapping[str, Any],
    actor: ActorCall | None = None,
    device_args: bool = False,
) -> SealedCall:
    """Seal a call of ``function`` (its identity) under the session's ``job_key``. A ``gpu='cc'`` call seals
    every argument as its own value, which the worker opens where the envelope says (``device_args``: array
    arguments onto the GPU), rather than inside the envelope, which it must open on the CPU to learn that."""
    call_id = os.urandom(16)
    payloads: list[Any] = []

    def slot(i: int, value: Any) -> ArgSlot:
        if isinstance(value, SealedRef):
            payloads.append(value.ref)
            return ArgSlot("ref", payload=len(payloads) - 1, descriptor=value.descriptor)
        if gpu != "cc" and not _large(value):
            return ArgSlot("value", value=value)
        payloads.append(seal_value(job_key, value, context(Role.ARG, session_id, function, call_id, i)))
        return ArgSlot("sealed", payload=len(payloads) - 1)

    positional = list(args)
    envelope = CallEnvelope(
        function=function,
        output_key_id=output_key.key_id,
        key_ids=key_ids,
        tee=tee,
        gpu=gpu,
        args=tuple(slot(i, v) for i, v in enumerate(positional)),
        kwargs=tuple((name, slot(len(positional) + j, kwargs[name])) for j, name in enumerate(sorted(kwargs))),
        actor=actor,
        device_args=gpu == "cc" and device_args,
    )
    sealed = seal_value(job_key, envelope, context(Role.CALL, session_id, function, call_id))
    if len(sealed) <= INLINE_ENVELOPE_BYTES:
        header = write_call_header(session_id, call_id, function, ticket, envelope=sealed)
    else:
        payloads.append(sealed)
        header = write_call_header(session_id, call_id, function, ticket, envelope=None, slot=len(payloads) - 1)
    return SealedCall(call_id, header, payloads)
