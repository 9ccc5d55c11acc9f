"""Python values as sealed parts, with large buffers sealed straight from their memory.

A value is pickled with protocol 5 (cloudpickle, as Ray does); out-of-band buffers (numpy arrays and
other PEP 574 buffers) are not copied into the pickle: each is sealed directly from its own memory into
its own numpy array. The sealed value is a list of numpy ``uint8`` arrays -- part 0 the pickle, then one
per buffer -- which Ray stores without further copies. Opening unseals each part into fresh memory, and
the unpickled arrays use that memory directly. Each part is bound to the value's context and its index.

Sealing and opening count their plaintext bytes (and failures to open) in :mod:`cchet.runtime.metrics`, and
report each part to the current ``cchet.get``/``cchet.put`` progress bar, if any (:mod:`cchet.runtime.progress`).
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np

from cchet.crypto.format import HEADER_SIZE, body_layout, sealed_size
from cchet.crypto.oneshot import open_header, seal_into, unseal_into
from cchet.errors import IntegrityError
from cchet.hazmat.keys import DataKey
from cchet.runtime import metrics, progress
from cchet.runtime.contexts import part_context

__all__ = ["SealedValue", "key_ids_of", "open_value", "seal_value"]

SealedValue = list[np.ndarray]
OUT_OF_BAND_BYTES = 64 << 10  # buffers at least this large are sealed as parts of their own, straight from memory


def _seal_part(key: DataKey, data: memoryview, context: bytes) -> np.ndarray:
    out = np.empty(sealed_size(len(data)), dtype=np.uint8)
    seal_into(key, data, out, context=context)
    return out


def seal_value(key: DataKey, value: Any, context: bytes) -> SealedValue:
    """Pickle ``value`` and seal it in parts under ``key`` and ``context``."""
    from ray import cloudpickle  # functions and classes defined in notebooks and tests pickle by value

    buffers: list[pickle.PickleBuffer] = []

    def out_of_band(buffer: pickle.PickleBuffer) -> bool:
        if buffer.raw().nbytes < OUT_OF_BAND_BYTES:
            return True  # small: stays in the pickle, one part fewer
        buffers.append(buffer)
        return False

    main = cloudpickle.dumps(value, protocol=5, buffer_callback=out_of_band)  # type: ignore[no-untyped-call]
    views = [memoryview(main), *(buf.raw() for buf in buffers)]
    progress.expect(sum(sealed_size(len(v)) for v in views))
    parts = []
    for i, view in enumerate(views):
        parts.append(_seal_part(key, view, part_context(context, i)))
        progress.advance(parts[-1].nbytes)
    metrics.bytes_sealed(sum(len(v) for v in views))
    return parts


def key_ids_of(value: SealedValue) -> set[bytes]:
    """The key ids a sealed value names in its headers (public)."""
    return {p[8:24].tobytes() for p in value}


def _open_part(key: DataKey, part: np.ndarray, context: bytes) -> np.ndarray:
    view = memoryview(part.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
    header = open_header(key, view)
    # numpy, not bytearray: its large allocations use transparent huge pages, which fault in far faster
    out = np.empty(body_layout(header, len(view) - HEADER_SIZE).plaintext_length, dtype=np.uint8)
    unseal_into(key, view, out, context=context)
    return out


def open_value(key: DataKey, parts: SealedValue, context: bytes) -> Any:
    """Unseal and unpickle a sealed value. Raises :class:`~cchet.IntegrityError` on any tampering, a part
    moved from elsewhere, or a missing or extra part."""
    if not isinstance(parts, list) or not parts or not all(isinstance(p, np.ndarray) for p in parts):
        raise IntegrityError()
    progress.expect(sum(p.nbytes for p in parts))
    opened = []
    try:
        for i, p in enumerate(parts):
            opened.append(_open_part(key, p, part_context(context, i)))
            progress.advance(p.nbytes)
    except IntegrityError:
        metrics.refusal("integrity")
        raise
    metrics.bytes_opened(sum(o.nbytes for o in opened))
    main, buffers = opened[0], opened[1:]
    try:
        return pickle.loads(main.data, buffers=buffers)  # noqa: S301 - authenticated: sealed by a key holder
    except pickle.UnpicklingError:
        raise IntegrityError() from None
