"""Python values as sealed value frames, with large buffers sealed straight from their memory.

A value is pickled with protocol 5 (cloudpickle, as Ray does); out-of-band buffers (numpy arrays and other
PEP 574 buffers) of 64 KiB or more are not copied into the pickle: each is sealed directly from its own memory
into its own part of the frame (:mod:`cchet.runtime.frames`), and the frame is a ``bytes`` object sealing
writes into in place, which Ray stores as raw bytes. Opening reads the frame where Ray keeps it, checks every
part's tag while unsealing it into fresh memory, and only then unpickles: the unpickled arrays use that memory
directly. Each part is bound to the value's context and its index.

Sealing and opening count their plaintext bytes (and failures to open) in :mod:`cchet.runtime.metrics`, and
report each part to the current ``cchet.get``/``cchet.put`` progress bar, if any (:mod:`cchet.runtime.progress`).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any

import numpy as np

from cchet.crypto.format import HEADER_SIZE, Header, body_layout, sealed_size
from cchet.crypto.oneshot import open_header, seal_into, unseal_into
from cchet.errors import IntegrityError, SealedFormatError
from cchet.hazmat.keys import DataKey
from cchet.runtime import metrics, progress
from cchet.runtime.contexts import part_context
from cchet.runtime.frames import new_bytes, read_value_frame, value_frame_layout, value_frame_size

__all__ = ["OUT_OF_BAND_BYTES", "PreparedValue", "frame_key_id", "open_value", "prepare", "seal_value"]

OUT_OF_BAND_BYTES = 64 << 10  # buffers at least this large are sealed as parts of their own, straight from memory


@dataclass(frozen=True)
class PreparedValue:
    """A value pickled and ready to seal: the pickle and its out-of-band buffers, in order."""

    views: tuple[memoryview, ...]

    @property
    def frame_size(self) -> int:
        return value_frame_size([sealed_size(len(v)) for v in self.views])

    def seal_into(self, key: DataKey, context: bytes, dest: np.ndarray) -> None:
        """Seal into ``dest``, exactly :attr:`frame_size` bytes."""
        slots = value_frame_layout(dest, [sealed_size(len(v)) for v in self.views])
        progress.expect(sum(int(slot.nbytes) for slot in slots))
        for i, (view, slot) in enumerate(zip(self.views, slots, strict=True)):
            seal_into(key, view, slot, context=part_context(context, i))
            progress.advance(int(slot.nbytes))
        metrics.bytes_sealed(sum(len(v) for v in self.views))


def prepare(value: Any) -> PreparedValue:
    """Pickle ``value``; buffers of 64 KiB or more stay where they are, to be sealed from their memory."""
    from ray import cloudpickle  # functions and classes defined in notebooks and tests pickle by value

    buffers: list[pickle.PickleBuffer] = []

    def out_of_band(buffer: pickle.PickleBuffer) -> bool:
        if buffer.raw().nbytes < OUT_OF_BAND_BYTES:
            return True  # small: stays in the pickle, one part fewer
        buffers.append(buffer)
        return False

    main = cloudpickle.dumps(value, protocol=5, buffer_callback=out_of_band)  # type: ignore[no-untyped-call]
    return PreparedValue((memoryview(main), *(buf.raw() for buf in buffers)))


def seal_value(key: DataKey, value: Any, context: bytes) -> bytes:
    """Pickle ``value`` and seal it under ``key`` and ``context`` into one value frame (``bytes``)."""
    prepared = prepare(value)
    frame, view = new_bytes(prepared.frame_size)
    prepared.seal_into(key, context, view)
    return frame


def frame_key_id(frame: bytes | memoryview) -> bytes:
    """The key id a value frame's first part names in its (clear) header: which key to open it with, to be
    checked against the keys the caller expects before any use."""
    parts = read_value_frame(frame)
    if len(parts[0]) < HEADER_SIZE:
        raise SealedFormatError("header", "shorter than a sealed-stream header")
    return Header.parse(parts[0]).key_id


def _open_part(key: DataKey, part: memoryview, context: bytes) -> np.ndarray:
    header = open_header(key, part)
    # numpy, not bytearray: its large allocations use transparent huge pages, which fault in far faster
    out = np.empty(body_layout(header, len(part) - HEADER_SIZE).plaintext_length, dtype=np.uint8)
    unseal_into(key, part, out, context=context)
    return out


def open_value(key: DataKey, frame: bytes | memoryview, context: bytes) -> Any:
    """Unseal every part of a value frame under ``key`` and ``context``, then unpickle. Raises
    :class:`~cchet.IntegrityError` on any tampering, a part moved from elsewhere, a missing or extra part, or a
    frame sealed under another key; nothing is unpickled before every tag has verified."""
    try:
        parts = read_value_frame(frame)
        progress.expect(sum(len(p) for p in parts))
        opened = []
        for i, p in enumerate(parts):
            opened.append(_open_part(key, p, part_context(context, i)))
            progress.advance(len(p))
    except IntegrityError:
        metrics.refusal("integrity")
        raise
    metrics.bytes_opened(sum(o.nbytes for o in opened))
    main, buffers = opened[0], opened[1:]
    try:
        return pickle.loads(main.data, buffers=buffers)  # noqa: S301 - authenticated: every tag verified above
    except pickle.UnpicklingError:
        raise IntegrityError() from None
