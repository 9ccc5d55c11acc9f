"""Sealing one call: the call envelope, its inline arguments, and the descriptors of its sealed-ref arguments.

:func:`seal_call` is everything the driver does to a call before Ray sees it; it needs no Ray. The envelope
(context ``cchet/v1/call``) lists each argument slot: a small value held in the envelope itself, a large
buffer sealed as its own argument under its ``arg`` context, or a sealed ref given by the descriptor of the
object it must be. ``meta`` is the only clear part:
ids a worker needs to find its keys and contexts (session id, call id, key ids), none of them secret.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cchet.hazmat.keys import DataKey
from cchet.runtime.contexts import Role, context
from cchet.runtime.sealedref import SealedRef
from cchet.runtime.values import OUT_OF_BAND_BYTES, SealedValue, seal_value

__all__ = ["SealedCall", "seal_call"]


@dataclass(frozen=True)
class SealedCall:
    call_id: bytes
    meta: dict[str, Any]
    envelope: SealedValue
    payloads: list[Any]
    key_ids: frozenset[bytes]


def _large(value: Any) -> bool:
    """Buffers of 64 KiB or more travel as their own sealed argument (sealed from their memory, opened into
    fresh memory without further copies); everything else rides inside the envelope."""
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes >= OUT_OF_BAND_BYTES
    return isinstance(value, bytes | bytearray | memoryview) and len(value) >= OUT_OF_BAND_BYTES


def seal_call(
    *,
    session_id: bytes,
    function_digest: bytes,
    job_key: DataKey,
    output_key: DataKey,
    args: Iterable[Any],
    kwargs: Mapping[str, Any],
    extra_key_ids: Iterable[bytes] = (),
    binding: Mapping[str, Any] | None = None,
) -> SealedCall:
    """Seal a call of the function with ``function_digest`` under the session's ``job_key``.

    Sealed refs among the arguments travel as their Ray object references (Ray moves the sealed bytes to the
    worker) plus their descriptors inside the envelope; everything else is sealed inline. ``binding`` adds
    fields the receiver checks before opening any argument (an actor's id and the call's sequence number).
    """
    call_id = os.urandom(16)
    payloads: list[Any] = []
    key_ids = {job_key.key_id, output_key.key_id, *extra_key_ids}

    def slot(i: int, value: Any) -> dict[str, Any]:
        index = len(payloads)
        if isinstance(value, SealedRef):
            payloads.append(value.ref)
            key_ids.add(value.descriptor.key_id)
            return {"kind": "ref", "payload": index, "descriptor": value.descriptor.to_json()}
        if not _large(value):
            return {"kind": "value", "value": value}  # small: inside the envelope itself
        payloads.append(seal_value(job_key, value, context(Role.ARG, session_id, function_digest, call_id, i)))
        return {"kind": "inline", "payload": index}

    positional = list(args)
    call = {
        "function_digest": function_digest.hex(),
        "args": [slot(i, v) for i, v in enumerate(positional)],
        "kwargs": {name: slot(len(positional) + j, kwargs[name]) for j, name in enumerate(sorted(kwargs))},
        **(binding or {}),
    }
    envelope = seal_value(job_key, call, context(Role.CALL, session_id, function_digest, call_id))
    meta = {
        "session_id": session_id.hex(),
        "call_id": call_id.hex(),
        "key_ids": sorted(k.hex() for k in key_ids),
        "output_key_id": output_key.key_id.hex(),
    }
    return SealedCall(call_id, meta, envelope, payloads, frozenset(key_ids))
