"""A real NVIDIA GPU through CuPy: pinned staging memory, streams, events, and the AES-GCM kernels.

Pinned memory comes from ``cupy.cuda.alloc_pinned_memory`` (``cudaHostAlloc``), never from
``cudaHostRegister``, which CC mode refuses. CuPy is imported when a :class:`CudaDevice` is built, not
before; without CuPy or the GPU that raises :class:`~cchet.DeviceUnavailable` naming the fix.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from cchet.gpu import loader
from cchet.gpu.device import Batch
from cchet.gpu.geometry import DEFAULT_LANES
from cchet.gpu.runtime import require_device
from cchet.gpu.schedule import StreamSchedule

__all__ = ["CudaDevice", "CudaGCM", "Launch"]

_H2D, _D2H = 1, 2


class _CudaEvent:
    def __init__(self, event: Any, cp: Any) -> None:
        self.event = event
        self._cp = cp

    def synchronize(self) -> None:
        self.event.synchronize()

    def done(self) -> bool:
        return bool(self.event.done)

    def seconds_since(self, origin: Any) -> float:
        self.synchronize()
        return float(self._cp.cuda.get_elapsed_time(origin.event, self.event)) / 1000.0


class _CudaStream:
    def __init__(self, cp: Any) -> None:
        self._cp = cp
        self.stream = cp.cuda.Stream(non_blocking=True)

    def record(self) -> _CudaEvent:
        return _CudaEvent(self.stream.record(), self._cp)

    def wait(self, event: Any) -> None:
        self.stream.wait_event(event.event)

    def synchronize(self) -> None:
        self.stream.synchronize()


class Launch:
    """The device buffers of one launch: ``partial`` sums, ``ek_j0`` per chunk, ``verdicts`` (open only).

    The device tests compare ``partial`` and ``ek_j0`` with :class:`cchet.gpu.reference.Trace`.
    """

    def __init__(self, partial: Any, ek_j0: Any, verdicts: Any, status: Any, done: _CudaEvent) -> None:
        self.partial = partial
        self.ek_j0 = ek_j0
        self.verdicts = verdicts
        self.status = status
        self._done = done

    def all_authentic(self) -> bool:
        """True when every chunk verified (blocks until the launch is done)."""
        self._done.synchronize()
        return bool((self.verdicts.get() == 1).all()) and int(self.status.get()[0]) == 0


class CudaGCM:
    """The kernels of ``kernels/aes_gcm.cu`` bound to one stream's schedule on one device.

    ``src``/``dst`` are 1-D uint8 CuPy arrays, 8-byte aligned (``ValueError`` otherwise). Plaintext
    chunks lie at ``c * chunk_size``, sealed chunks at ``c * (chunk_size + 16)``.
    """

    def __init__(self, device: CudaDevice, schedule: StreamSchedule, chunk_size: int) -> None:
        if schedule.geometry.lanes != DEFAULT_LANES:
            raise ValueError(f"the kernels run {DEFAULT_LANES} lanes; plan the geometry with that")
        if chunk_size & (chunk_size - 1) or chunk_size < 16:
            raise ValueError(f"chunk_size must be a power of two >= 16, got {chunk_size}")
        self._cp = device.cp
        self._device = device
        self._chunk_log2 = chunk_size.bit_length() - 1
        self._cs = chunk_size
        self.geometry = schedule.geometry
        with device.cp.cuda.Device(device.index):
            self._sched = device.cp.asarray(schedule.words)
        self._mod = loader.module(device.index)

    def _launch(self, src: Any, dst: Any, batch: Batch, stream: Any, *, seal: bool) -> Launch:
        cp = self._cp
        for name, buf in (("src", src), ("dst", dst)):
            if buf.data.ptr % 8:
                raise ValueError(f"{name} must be 8-byte aligned on the device")
        if batch.n_chunks < 1 or not 0 <= batch.last_len <= self._cs:
            raise ValueError(f"bad batch: {batch}")
        first_index, n_chunks, last_len, final = (
            batch.first_index,
            batch.n_chunks,
            batch.last_len,
            batch.final,
        )
        g = self.geometry
        last_index = first_index + n_chunks - 1 if final else -1
        args = (
            np.uint32(first_index),
            np.int64(last_index),
            np.uint32(n_chunks),
            np.uint32(last_len),
            np.uint32(self._chunk_log2),
            np.uint32(g.segments),
        )
        with cp.cuda.Device(self._device.index), stream.stream:
            partial = cp.zeros(4 * n_chunks * g.segments, dtype=cp.uint32)
            ek_j0 = cp.zeros(4 * n_chunks, dtype=cp.uint32)
            verdicts = cp.zeros(n_chunks, dtype=cp.uint32)
            status = cp.zeros(1, dtype=cp.uint32)
            plain, sealed = (src, dst) if seal else (dst, src)
            kind = "seal" if seal else "open"
            self._mod.get_function(f"cchet_gcm_{kind}_segments")(
                (n_chunks * g.segments,), (g.lanes,), (self._sched, src, dst, *args, partial, ek_j0, status)
            )
            self._mod.get_function(f"cchet_gcm_{kind}_finish")(
                (n_chunks,), (g.lanes,), (self._sched, sealed, plain, *args, partial, ek_j0, verdicts)
            )
        return Launch(partial, ek_j0, verdicts, status, stream.record())

    def seal(self, src: Any, dst: Any, batch: Batch, stream: Any) -> Launch:
        return self._launch(src, dst, batch, stream, seal=True)

    def open(self, src: Any, dst: Any, batch: Batch, stream: Any) -> Launch:
        return self._launch(src, dst, batch, stream, seal=False)


class CudaDevice:
    """CUDA device ``index`` through CuPy. Raises :class:`~cchet.DeviceUnavailable` without CuPy or GPU."""

    simulated = False

    def __init__(self, index: int = 0) -> None:
        self.cp = require_device(index)
        self.index = index
        props = self.cp.cuda.runtime.getDeviceProperties(index)
        name = props["name"]
        self.name = name.decode() if isinstance(name, bytes) else str(name)

    def pinned(self, nbytes: int) -> npt.NDArray[np.uint8]:
        mem = self.cp.cuda.alloc_pinned_memory(nbytes)
        return np.frombuffer(mem, dtype=np.uint8, count=nbytes)

    def empty(self, nbytes: int) -> Any:
        with self.cp.cuda.Device(self.index):
            return self.cp.empty(nbytes, dtype=self.cp.uint8)

    def stream(self) -> _CudaStream:
        with self.cp.cuda.Device(self.index):
            return _CudaStream(self.cp)

    def _copy(self, dst_ptr: int, src_ptr: int, nbytes: int, kind: int, stream: Any) -> None:
        self.cp.cuda.runtime.memcpyAsync(dst_ptr, src_ptr, nbytes, kind, stream.stream.ptr)

    def upload(self, dst: Any, src: npt.NDArray[np.uint8], stream: Any) -> None:
        if dst.nbytes != src.nbytes:
            raise ValueError(f"copy of {src.nbytes} bytes into {dst.nbytes}")
        self._copy(dst.data.ptr, src.ctypes.data, src.nbytes, _H2D, stream)

    def download(self, dst: npt.NDArray[np.uint8], src: Any, stream: Any) -> None:
        if dst.nbytes != src.nbytes:
            raise ValueError(f"copy of {src.nbytes} bytes into {dst.nbytes}")
        self._copy(dst.ctypes.data, src.data.ptr, src.nbytes, _D2H, stream)

    def fill_zero(self, dst: Any, stream: Any) -> None:
        self.cp.cuda.runtime.memsetAsync(dst.data.ptr, 0, dst.nbytes, stream.stream.ptr)

    def gcm(self, schedule: StreamSchedule, chunk_size: int) -> CudaGCM:
        return CudaGCM(self, schedule, chunk_size)

    def as_bytes(self, array: Any) -> Any:
        if not isinstance(array, self.cp.ndarray):
            raise TypeError(f"expected a cupy.ndarray, got {type(array).__name__}")
        if not array.flags.c_contiguous:
            raise ValueError("device array must be C-contiguous: use cupy.ascontiguousarray")
        return array.reshape(-1).view(self.cp.uint8)

    def from_bytes(self, buf: Any, dtype: npt.DTypeLike, shape: tuple[int, ...]) -> Any:
        return buf.view(dtype).reshape(shape)

    def is_device_array(self, obj: object) -> bool:
        return isinstance(obj, self.cp.ndarray)
