"""Seal and open whole sealed streams that live in device memory, with the CUDA kernels.

:func:`seal` turns a device array into a sealed stream (format v1, header included) in device memory;
:func:`unseal` opens one. Both produce exactly the bytes of :func:`cchet.seal` / :func:`cchet.unseal`
(the kernels follow the same format, and the tests check it byte for byte).

Guarantees: :func:`unseal` checks every chunk's tag on the device and, on any failure, zeroes the whole
destination before raising :class:`~cchet.IntegrityError`; no unauthenticated plaintext is returned.
Limits: the stream key and AES round keys are computed on the host and copied to the device; on a GPU not
in CC mode that copy and device memory are not protected. ``device`` is a CUDA index or a
:class:`~cchet.gpu.device.Device` (the SIMULATED fake device in CI); without CuPy or a GPU a CUDA index
raises :class:`~cchet.DeviceUnavailable`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cchet.crypto import format as fmt
from cchet.crypto.oneshot import new_header, open_header
from cchet.errors import IntegrityError
from cchet.gpu.device import Batch, Device, KernelRefused, Stream, after_caller, caller_waits
from cchet.gpu.geometry import Geometry, plan
from cchet.gpu.schedule import StreamSchedule
from cchet.hazmat.keys import DataKey

__all__ = ["DEFAULT_CHUNK_SIZE", "resolve_device", "seal", "unseal"]

DEFAULT_CHUNK_SIZE = 1 << fmt.DEFAULT_CHUNK_LOG2


def resolve_device(device: int | Device) -> Device:
    """A :class:`Device` for a CUDA index (through CuPy), or ``device`` itself."""
    if isinstance(device, int):
        from cchet.gpu.cuda_device import CudaDevice

        return CudaDevice(device)
    return device


def _batch(n: int, chunk_size: int) -> Batch:
    chunks = fmt.chunk_count(n, chunk_size)
    return Batch(0, chunks, n - (chunks - 1) * chunk_size, True)


def _plan(dev: Device, chunks: int, chunk_size: int) -> Geometry:
    return plan(chunks, chunk_size, sms=dev.sm_count, blocks_per_sm=dev.blocks_per_sm)


def _close(stream: Stream) -> None:
    close = getattr(stream, "close", None)  # the SIMULATED device's streams are threads
    if callable(close):
        close()


def seal(
    key: DataKey,
    array: Any,
    *,
    context: bytes = b"",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    device: int | Device = 0,
) -> Any:
    """Seal a C-contiguous device array into a new device buffer holding the whole sealed stream.

    Work queued on the caller's current stream before the call (what produces ``array``) runs first,
    and work queued there afterwards sees the sealed stream. Raises
    :class:`~cchet.gpu.device.KernelRefused` if the kernel refuses the launch (a schedule that does not
    match the compiled kernels; nothing is returned then).
    """
    dev = resolve_device(device)
    src = dev.as_bytes(array)
    n = int(src.nbytes)
    header = new_header(key, n, chunk_size)
    batch = _batch(n, chunk_size)
    schedule = StreamSchedule.for_stream(key, header, context, _plan(dev, batch.n_chunks, chunk_size))
    out = dev.empty(fmt.sealed_size(n, chunk_size))
    stream = dev.stream()
    try:
        caller = after_caller(dev, [stream])  # array may still be in production on the caller's stream
        head = dev.pinned(fmt.HEADER_SIZE)
        head[:] = np.frombuffer(header.pack(), dtype=np.uint8)
        dev.upload(out[: fmt.HEADER_SIZE], head, stream)
        gcm = dev.gcm(schedule, chunk_size, stream=stream)
        launch = gcm.seal(src, out[fmt.HEADER_SIZE :], batch, stream, join_caller=False)
        caller_waits(caller, [stream])
        stream.synchronize()  # head, gcm and launch stay referenced until here
        if not launch.accepted():
            raise KernelRefused(
                "the kernel refused the seal launch (its schedule's geometry does not match the compiled "
                "kernels); the sealed buffer is not returned"
            )
    finally:
        _close(stream)
    return out


def unseal(key: DataKey, sealed: Any, *, context: bytes = b"", device: int | Device = 0) -> Any:
    """Open a sealed stream held in device memory into a new flat uint8 device array.

    Work queued on the caller's current stream before the call (what produces ``sealed``) runs first,
    and work queued there afterwards sees the plaintext. Raises ``SealedFormatError`` for a malformed
    header or size, :class:`~cchet.IntegrityError` when a tag fails or the kernel refuses the launch (the
    destination is zeroed first).
    """
    dev = resolve_device(device)
    blob = dev.as_bytes(sealed)
    if int(blob.nbytes) < fmt.HEADER_SIZE:
        open_header(key, b"")  # raises SealedFormatError naming the header
    stream = dev.stream()
    try:
        caller = after_caller(dev, [stream])
        head = dev.pinned(fmt.HEADER_SIZE)
        dev.download(head, blob[: fmt.HEADER_SIZE], stream)
        stream.synchronize()
        header = open_header(key, head.tobytes())
        layout = fmt.body_layout(header, int(blob.nbytes) - fmt.HEADER_SIZE)
        n = layout.plaintext_length
        batch = _batch(n, header.chunk_size)
        schedule = StreamSchedule.for_stream(key, header, context, _plan(dev, batch.n_chunks, header.chunk_size))
        out = dev.empty(n)
        stream.wait(caller.record())  # out comes from the caller's stream's memory pool
        gcm = dev.gcm(schedule, header.chunk_size, stream=stream)  # referenced until the stream is synchronised
        verdicts = gcm.open(blob[fmt.HEADER_SIZE :], out, batch, stream, join_caller=False)
        if not verdicts.all_authentic():
            dev.fill_zero(out, stream)
            caller_waits(caller, [stream])
            stream.synchronize()
            raise IntegrityError()
        caller_waits(caller, [stream])
        stream.synchronize()
    finally:
        _close(stream)
    return out
