"""Python values as sealed value frames, with large buffers and arrays sealed straight from their memory.

A value is pickled with protocol 5 (cloudpickle, as Ray does); out-of-band buffers (PEP 574 buffers) of 64
KiB or more are not copied into the pickle: each is sealed directly from its own memory into its own part of
the frame (:mod:`cchet.runtime.frames`), and the frame is a ``bytes`` object sealing writes into in place,
which Ray stores as raw bytes. Arrays get parts of their own too: a NumPy array of 64 KiB or more is sealed
from its memory as a *host array* part, and a device array (CuPy, or the SIMULATED GPU's) of any size is sealed
by the GPU kernel as a *device array* part (:mod:`cchet.runtime.devices`), so its plaintext never reaches host
memory. Part 0 holds a manifest -- ``"CVM1" | u32 n | n x u8 kind`` (buffer, host array, device array) -- and
then the pickle, which names each array part by index with its dtype and shape.

Opening reads the frame where Ray keeps it and checks every part's tag while unsealing it -- part 0 first, into
fresh host memory, then each other part where its manifest kind and the caller's :class:`Placement` say: host
memory, or a GPU (opened there by the kernel from the sealed bytes; a ``gpu='cc'`` task's arguments) -- and
only then unpickles: arrays use that memory directly. Each part is bound to the value's context and its index.

Sealing and opening count their plaintext bytes (and failures to open) in :mod:`cchet.runtime.metrics`, and
report each part to the current ``cchet.get``/``cchet.put`` progress bar, if any (:mod:`cchet.runtime.progress`).
"""

from __future__ import annotations

import contextvars
import io
import pickle
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from cchet.crypto import format as fmt
from cchet.crypto.format import HEADER_SIZE, Header, body_layout, sealed_size
from cchet.crypto.oneshot import open_header, seal_into, unseal_into
from cchet.errors import IntegrityError, SealedFormatError
from cchet.gpu.device import Device
from cchet.hazmat.keys import DataKey
from cchet.runtime import metrics, progress
from cchet.runtime.contexts import part_context
from cchet.runtime.frames import new_bytes, read_value_frame, value_frame_layout, value_frame_size

__all__ = [
    "HOST",
    "OUT_OF_BAND_BYTES",
    "Placement",
    "PreparedValue",
    "frame_key_id",
    "open_value",
    "prepare",
    "seal_value",
]

OUT_OF_BAND_BYTES = 64 << 10  # buffers and arrays at least this large are sealed as parts of their own
DEVICE_CHUNK_SIZE = 1 << fmt.DEFAULT_CHUNK_LOG2  # device array parts are sealed and opened in chunks of this size

BUFFER, HOST_ARRAY, DEVICE_ARRAY = 0, 1, 2  # the kind of each part after part 0, in the manifest
_MANIFEST = b"CVM1"


@dataclass(frozen=True)
class Placement:
    """Where the arrays of an opened value go: into host memory (``device`` None), or onto ``device`` -- the
    arrays that were on a device when sealed, and with ``host_arrays`` NumPy arrays too (a ``gpu='cc'``
    task's arguments arrive as device arrays)."""

    device: Device | None = None
    host_arrays: bool = False


HOST = Placement()


@dataclass(frozen=True)
class _DevicePart:
    device: Device
    array: Any

    @property
    def nbytes(self) -> int:
        return int(self.array.nbytes)


Part = memoryview | _DevicePart


def _part_size(part: Part) -> int:
    if isinstance(part, _DevicePart):
        return sealed_size(part.nbytes, DEVICE_CHUNK_SIZE)
    return sealed_size(len(part))


@dataclass(frozen=True)
class PreparedValue:
    """A value pickled and ready to seal: part 0 (manifest and pickle), then its out-of-band buffers and
    arrays, in order."""

    views: tuple[Part, ...]

    @property
    def frame_size(self) -> int:
        return value_frame_size([_part_size(v) for v in self.views])

    def seal_into(self, key: DataKey, context: bytes, dest: np.ndarray) -> None:
        """Seal into ``dest``, exactly :attr:`frame_size` bytes: host parts on the CPU, device arrays by the
        kernel of their GPU (only their ciphertext comes to host memory)."""
        from cchet.runtime.devices import channel

        slots = value_frame_layout(dest, [_part_size(v) for v in self.views])
        progress.expect(sum(int(slot.nbytes) for slot in slots))
        for i, (view, slot) in enumerate(zip(self.views, slots, strict=True)):
            ctx = part_context(context, i)
            if isinstance(view, _DevicePart):
                sealed = channel(view.device, DEVICE_CHUNK_SIZE).to_host_sealed(view.array, key, context=ctx)
                slot[:] = np.frombuffer(sealed, dtype=np.uint8)
            else:
                seal_into(key, view, slot, context=ctx)
            progress.advance(int(slot.nbytes))
        metrics.bytes_sealed(sum(v.nbytes if isinstance(v, _DevicePart) else len(v) for v in self.views))


def _array(source: int | bytes, dtype: np.dtype[Any], shape: tuple[int, ...], fortran: bool, on_device: bool) -> Any:
    """Rebuild an array a sealed value carried (called by the unpickler, inside :func:`open_value` only):
    from its opened part ``source`` (host or device memory) or, for a small host array, the bytes in the
    pickle; onto the placement's device when it asks for this kind of array."""
    opening = _OPENING.get()
    if opening is None:
        raise IntegrityError("a cchet array outside a sealed value")
    placement, parts = opening
    dims = tuple(reversed(shape)) if fortran else tuple(shape)
    data = parts[source] if isinstance(source, int) else np.frombuffer(bytearray(source), dtype=np.uint8)
    if placement.device is not None and placement.device.is_device_array(data):
        array = placement.device.from_bytes(data, dtype, dims)
    else:
        array = data.view(dtype).reshape(dims)
        if placement.device is not None and (on_device or placement.host_arrays):
            from cchet.runtime.devices import upload

            array = upload(placement.device, array)  # small: its plaintext was in the pickle part anyway
    return array.T if fortran else array


_OPENING: contextvars.ContextVar[tuple[Placement, dict[int, Any]] | None] = contextvars.ContextVar(
    "cchet_opening", default=None
)


def _pickler_class() -> type:
    from ray import cloudpickle  # functions and classes defined in notebooks and tests pickle by value

    class _Pickler(cloudpickle.Pickler):
        """cloudpickle, with arrays and large buffers as separate parts (see the module docstring)."""

        def __init__(self, file: io.BytesIO) -> None:
            super().__init__(file, protocol=5, buffer_callback=self._out_of_band)  # type: ignore[no-untyped-call]
            self.parts: list[tuple[int, Part]] = []

        def _out_of_band(self, buffer: pickle.PickleBuffer) -> bool:
            if buffer.raw().nbytes < OUT_OF_BAND_BYTES:
                return True  # small: stays in the pickle, one part fewer
            self.parts.append((BUFFER, buffer.raw()))
            return False

        def reducer_override(self, obj: Any) -> Any:
            if type(obj) is np.ndarray and not obj.dtype.hasobject:
                fortran = bool(obj.flags.f_contiguous and not obj.flags.c_contiguous)
                data = np.ascontiguousarray(obj.T if fortran else obj)
                if data.nbytes < OUT_OF_BAND_BYTES:
                    return _array, (data.tobytes(), obj.dtype, obj.shape, fortran, False)
                self.parts.append((HOST_ARRAY, data.reshape(-1).view(np.uint8).data))
                return _array, (len(self.parts), obj.dtype, obj.shape, fortran, False)
            from cchet.runtime.devices import contiguous, device_of

            device = device_of(obj)
            if device is not None:
                self.parts.append((DEVICE_ARRAY, _DevicePart(device, contiguous(device, obj))))
                return _array, (len(self.parts), obj.dtype, tuple(obj.shape), False, True)
            return super().reducer_override(obj)  # type: ignore[no-untyped-call]

    return _Pickler


def prepare(value: Any) -> PreparedValue:
    """Pickle ``value``: buffers and NumPy arrays of 64 KiB or more stay where they are, to be sealed from
    their memory; device arrays stay on their GPU, to be sealed there."""
    out = io.BytesIO()
    pickler = _pickler_class()(out)
    pickler.dump(value)
    kinds = bytes(kind for kind, _ in pickler.parts)
    main = _MANIFEST + struct.pack(">I", len(kinds)) + kinds + out.getbuffer()
    return PreparedValue((memoryview(main), *(part for _, part in pickler.parts)))


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


def _open_on_device(key: DataKey, part: memoryview, context: bytes, device: Device) -> Any:
    """Open a part on ``device``: its sealed bytes go to the GPU and the kernel opens them there."""
    from cchet.runtime.devices import channel

    if len(part) < HEADER_SIZE or Header.parse(part).chunk_size != DEVICE_CHUNK_SIZE:
        raise IntegrityError()  # cchet seals every array part in chunks of DEVICE_CHUNK_SIZE
    return channel(device, DEVICE_CHUNK_SIZE).to_device(part, key=key, context=context)


def _manifest(main: np.ndarray) -> tuple[bytes, memoryview]:
    """The part kinds and the pickle of an (authenticated) part 0."""
    view = main.data
    if len(view) < 8 or bytes(view[:4]) != _MANIFEST:
        raise IntegrityError()
    (count,) = struct.unpack(">I", view[4:8])
    if len(view) < 8 + count:
        raise IntegrityError()
    return bytes(view[8 : 8 + count]), view[8 + count :]


def open_value(key: DataKey, frame: bytes | memoryview, context: bytes, placement: Placement = HOST) -> Any:
    """Unseal every part of a value frame under ``key`` and ``context`` -- arrays where ``placement`` says --
    then unpickle. Raises :class:`~cchet.IntegrityError` on any tampering, a part moved from elsewhere, a
    missing or extra part, or a frame sealed under another key; nothing is unpickled before every tag has
    verified."""
    try:
        parts = read_value_frame(frame)
        progress.expect(sum(len(p) for p in parts))
        main = _open_part(key, parts[0], part_context(context, 0))
        progress.advance(len(parts[0]))
        kinds, pickled = _manifest(main)
        if len(kinds) != len(parts) - 1:
            raise IntegrityError()
        opened: dict[int, Any] = {}
        buffers = []
        for i, (kind, part) in enumerate(zip(kinds, parts[1:], strict=True), start=1):
            ctx = part_context(context, i)
            device = placement.device
            if device is not None and (kind == DEVICE_ARRAY or (kind == HOST_ARRAY and placement.host_arrays)):
                opened[i] = _open_on_device(key, part, ctx, device)
            elif kind in (BUFFER, HOST_ARRAY, DEVICE_ARRAY):
                opened[i] = _open_part(key, part, ctx)
            else:
                raise IntegrityError()
            if kind == BUFFER:
                buffers.append(opened[i])
            progress.advance(len(part))
    except IntegrityError:
        metrics.refusal("integrity")
        raise
    metrics.bytes_opened(int(main.nbytes) + sum(int(o.nbytes) for o in opened.values()))
    token = _OPENING.set((placement, opened))
    try:
        return pickle.loads(pickled, buffers=buffers)  # noqa: S301 - authenticated: every tag verified above
    except pickle.UnpicklingError:
        raise IntegrityError() from None
    finally:
        _OPENING.reset(token)
