"""A real NVIDIA GPU through CuPy: pinned staging memory, streams, events, and the AES-GCM kernels.

Pinned memory comes from ``cupy.cuda.alloc_pinned_memory`` (``cudaHostAlloc``), never from
``cudaHostRegister``, which CC mode refuses. CuPy is imported when a :class:`CudaDevice` is built, not
before; without CuPy or the GPU that raises :class:`~cchet.DeviceUnavailable` naming the fix.

Lifetimes. CuPy returns device memory to its pool when the last Python reference dies, even while a
kernel queued on some stream still reads it. A :class:`Launch` therefore holds the schedule, its own
work buffers and the launch's source and destination until it is dropped; callers keep launches until
their stream is synchronised or their event is done.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from cchet.gpu import loader
from cchet.gpu.device import Batch, KernelRefused
from cchet.gpu.geometry import DEFAULT_BLOCKS_PER_SM, DEFAULT_LANES
from cchet.gpu.runtime import require_device
from cchet.gpu.schedule import StreamSchedule

__all__ = ["CudaDevice", "CudaGCM", "Launch"]

_H2D, _D2H = 1, 2
_SEGMENTS = ("cchet_gcm_seal_segments", "cchet_gcm_open_segments")


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
    """A CuPy stream: a new non-blocking one, or ``stream`` as it is (the caller's current stream)."""

    def __init__(self, cp: Any, stream: Any = None) -> None:
        self._cp = cp
        self.stream = cp.cuda.Stream(non_blocking=True) if stream is None else stream

    def record(self) -> _CudaEvent:
        # Blocking-sync events: a host thread waiting on one sleeps instead of spinning, so the channel's
        # CPU threads that wait for copies leave the cores to the threads that seal and open.
        event = self._cp.cuda.Event(block=True)
        return _CudaEvent(self.stream.record(event), self._cp)

    def wait(self, event: Any) -> None:
        self.stream.wait_event(event.event)

    def synchronize(self) -> None:
        self.stream.synchronize()


class Launch:
    """The device buffers of one launch: ``partial`` sums, ``ek_j0`` per chunk, ``verdicts`` (open only)
    and the ``status`` word (0: the kernel accepted the launch's geometry), all views of one buffer.

    The device tests compare ``partial`` and ``ek_j0`` with :class:`cchet.gpu.reference.Trace`. The host
    reads the status and verdicts once: from the pinned ``report`` the launch copied them into, else with
    one device read after the launch's event.
    """

    def __init__(
        self,
        partial: Any,
        ek_j0: Any,
        verdicts: Any,
        status: Any,
        done: _CudaEvent,
        *,
        seal: bool = False,
        words: Any = None,
        report: npt.NDArray[np.uint32] | None = None,
        keep: tuple[Any, ...] = (),
    ) -> None:
        self.partial = partial
        self.ek_j0 = ek_j0
        self.verdicts = verdicts
        self.status = status
        self._done = done
        self._seal = seal
        self._words = words
        self._report = report
        self._keep = keep  # schedule, work buffers, src and dst: alive while the kernels may run
        self._read: npt.NDArray[np.uint32] | None = None

    def done(self) -> bool:
        return self._done.done()

    def _host_words(self) -> npt.NDArray[np.uint32]:
        if self._read is None:
            self._done.synchronize()
            if self._report is not None:
                self._read = self._report
            else:
                self._read = np.asarray(self._words.get(), dtype=np.uint32)
        return self._read

    def accepted(self) -> bool:
        """True when the kernel accepted the launch (blocks until the launch is done)."""
        return int(self._host_words()[0]) == 0

    def check(self) -> None:
        """Raise :class:`~cchet.gpu.device.KernelRefused` unless the kernel accepted the launch."""
        if not self.accepted():
            status = int(self._host_words()[0])
            raise KernelRefused(
                f"the kernel refused the launch (status {status:#x}: the schedule's geometry does not match "
                "the compiled kernels); nothing it wrote may be used"
            )

    def all_authentic(self) -> bool:
        """True when every chunk verified (blocks until the launch is done); a seal launch: accepted."""
        words = self._host_words()
        if int(words[0]) != 0:
            return False
        return True if self._seal else bool((words[1 : 1 + len(self.verdicts)] == 1).all())


class CudaGCM:
    """The kernels of ``kernels/aes_gcm.cu`` bound to one stream's schedule on one device.

    ``src``/``dst`` are 1-D uint8 CuPy arrays, 8-byte aligned (``ValueError`` otherwise). Plaintext
    chunks lie at ``c * chunk_size``, sealed chunks at ``c * (chunk_size + 16)``. The schedule is copied
    on ``stream`` (default: a private stream); every launch waits for that copy.
    """

    def __init__(
        self, device: CudaDevice, schedule: StreamSchedule, chunk_size: int, *, stream: _CudaStream | None = None
    ) -> None:
        if schedule.geometry.lanes != DEFAULT_LANES:
            raise ValueError(f"the kernels run {DEFAULT_LANES} lanes; plan the geometry with that")
        if chunk_size & (chunk_size - 1) or chunk_size < 16:
            raise ValueError(f"chunk_size must be a power of two >= 16, got {chunk_size}")
        self._cp = device.cp
        self._device = device
        self._chunk_log2 = chunk_size.bit_length() - 1
        self._cs = chunk_size
        self.geometry = schedule.geometry
        upload = stream if stream is not None else device.stream()
        with device.cp.cuda.Device(device.index), upload.stream:
            self._sched = device.cp.asarray(schedule.words)
        self._ready = upload.record()
        self._mod = loader.module(device.index, defines=device.defines)

    def _launch(
        self,
        src: Any,
        dst: Any,
        batch: Batch,
        stream: _CudaStream,
        *,
        seal: bool,
        report: npt.NDArray[np.uint32] | None,
        join_caller: bool,
    ) -> Launch:
        cp = self._cp
        for name, buf in (("src", src), ("dst", dst)):
            if buf.data.ptr % 8:
                raise ValueError(f"{name} must be 8-byte aligned on the device")
        if batch.n_chunks < 1 or not 0 <= batch.last_len <= self._cs:
            raise ValueError(f"bad batch: {batch}")
        n = batch.n_chunks
        report_words = 1 if seal else 1 + n
        if report is not None and (
            report.dtype != np.uint32 or not report.flags.c_contiguous or report.size < report_words
        ):
            raise ValueError(f"report must be a C-contiguous uint32 host array of >= {report_words} words")
        g = self.geometry
        last_index = batch.first_index + n - 1 if batch.final else -1
        args = (
            np.uint32(batch.first_index),
            np.int64(last_index),
            np.uint32(n),
            np.uint32(batch.last_len),
            np.uint32(self._chunk_log2),
            np.uint32(g.segments),
        )
        caller = self._device.current_stream() if join_caller else None
        if caller is not None:
            stream.wait(caller.record())  # src may still be in production on the caller's stream
        stream.wait(self._ready)  # the schedule's copy
        ptr = stream.stream.ptr
        with cp.cuda.Device(self._device.index), stream.stream:
            # One buffer per launch: status, verdicts, E_K(J0), partial sums (the last two are written
            # in full by the kernels before they are read, so only the first 1 + n words are zeroed).
            words = cp.empty(1 + 5 * n + 4 * n * g.segments, dtype=cp.uint32)
            cp.cuda.runtime.memsetAsync(words.data.ptr, 0, 4 * (1 + n), ptr)
            status, verdicts = words[0:1], words[1 : 1 + n]
            ek_j0, partial = words[1 + n : 1 + 5 * n], words[1 + 5 * n :]
            plain, sealed = (src, dst) if seal else (dst, src)
            kind = "seal" if seal else "open"
            self._mod.get_function(f"cchet_gcm_{kind}_segments")(
                (g.grid(n),), (g.lanes,), (self._sched, src, dst, *args, partial, ek_j0, status)
            )
            self._mod.get_function(f"cchet_gcm_{kind}_finish")(
                (g.finish_grid(n),), (g.lanes,), (self._sched, sealed, plain, *args, partial, ek_j0, verdicts)
            )
        if report is not None:
            cp.cuda.runtime.memcpyAsync(report.ctypes.data, words.data.ptr, 4 * report_words, _D2H, ptr)
        done = stream.record()
        if caller is not None:
            caller.wait(done)  # the caller's later work sees the results
        return Launch(
            partial,
            ek_j0,
            verdicts,
            status,
            done,
            seal=seal,
            words=words[:report_words],
            report=report,
            keep=(self, words, src, dst),
        )

    def seal(
        self,
        src: Any,
        dst: Any,
        batch: Batch,
        stream: Any,
        *,
        report: npt.NDArray[np.uint32] | None = None,
        join_caller: bool = True,
    ) -> Launch:
        return self._launch(src, dst, batch, stream, seal=True, report=report, join_caller=join_caller)

    def open(
        self,
        src: Any,
        dst: Any,
        batch: Batch,
        stream: Any,
        *,
        report: npt.NDArray[np.uint32] | None = None,
        join_caller: bool = True,
    ) -> Launch:
        return self._launch(src, dst, batch, stream, seal=False, report=report, join_caller=join_caller)


class CudaDevice:
    """CUDA device ``index`` through CuPy. Raises :class:`~cchet.DeviceUnavailable` without CuPy or GPU.

    ``defines`` selects a compile-time variant of the kernels (:func:`cchet.gpu.loader.define_options`);
    the default, none, is the production build.
    """

    simulated = False

    def __init__(self, index: int = 0, *, defines: Mapping[str, int] | None = None) -> None:
        loader.define_options(defines)  # refuse bad names before touching CuPy
        self.cp = require_device(index)
        self.index = index
        self.defines = dict(defines) if defines else None
        props = self.cp.cuda.runtime.getDeviceProperties(index)
        name = props["name"]
        self.name = name.decode() if isinstance(name, bytes) else str(name)
        self.sm_count = int(props["multiProcessorCount"])
        self._blocks_per_sm: int | None = None

    @property
    def blocks_per_sm(self) -> int:
        """Resident blocks of the segments kernels per SM, from the driver's occupancy calculator (the
        compiled minimum, ``CCHET_MIN_BLOCKS_PER_SM`` = 4, where this CuPy does not offer it)."""
        if self._blocks_per_sm is None:
            driver = getattr(self.cp.cuda, "driver", None)
            occupancy = getattr(driver, "occupancyMaxActiveBlocksPerMultiprocessor", None)
            if occupancy is None:
                self._blocks_per_sm = DEFAULT_BLOCKS_PER_SM
            else:
                mod = loader.module(self.index, defines=self.defines)
                with self.cp.cuda.Device(self.index):
                    counts = [int(occupancy(mod.get_function(name).kernel.ptr, DEFAULT_LANES, 0)) for name in _SEGMENTS]
                self._blocks_per_sm = max(1, min(counts))
        return self._blocks_per_sm

    def pinned(self, nbytes: int) -> npt.NDArray[np.uint8]:
        mem = self.cp.cuda.alloc_pinned_memory(nbytes)
        return np.frombuffer(mem, dtype=np.uint8, count=nbytes)

    def empty(self, nbytes: int) -> Any:
        with self.cp.cuda.Device(self.index):
            return self.cp.empty(nbytes, dtype=self.cp.uint8)

    def stream(self) -> _CudaStream:
        with self.cp.cuda.Device(self.index):
            return _CudaStream(self.cp)

    def current_stream(self) -> _CudaStream:
        with self.cp.cuda.Device(self.index):
            return _CudaStream(self.cp, self.cp.cuda.get_current_stream())

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

    def gcm(self, schedule: StreamSchedule, chunk_size: int, *, stream: Any = None) -> CudaGCM:
        return CudaGCM(self, schedule, chunk_size, stream=stream)

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
