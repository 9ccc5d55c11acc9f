"""The SIMULATED GPU of a simulated ``+gpu`` node: what confidential GPU tasks run on in CI and in
``cchet.init(simulate="tdx+gpu")``. It protects nothing, and every name and repr it produces says so.

It is :class:`~cchet.gpu.fake_device.FakeDevice` (numpy memory, threads as streams) with two differences that
the runtime needs. Its "kernel" is the CPU engine (:class:`~cchet.crypto.engine.StreamChunks`) run on the
key material the schedule carries -- the stream key, chunk AAD and nonce prefix a real kernel receives -- so a
whole task's arguments open in milliseconds and plaintext is written only into the destination, as a kernel
writes only into device memory (the numpy reference of :mod:`cchet.gpu.reference`, which the kernel tests
use, builds plaintext in temporaries). And its device memory is anonymous ``mmap`` regions apart from the
process heap, listed by :meth:`SimulatedGpu.regions`, so a test can check that argument plaintext lies in
(simulated) device memory and nowhere else in the process.
"""

from __future__ import annotations

import mmap
import threading
import weakref
from typing import Any

import numpy as np
import numpy.typing as npt

from cchet.crypto.engine import StreamChunks
from cchet.errors import IntegrityError
from cchet.gpu import schedule as sched
from cchet.gpu.device import Batch
from cchet.gpu.fake_device import FakeDevice, FakeDeviceArray, FakeGCM
from cchet.gpu.schedule import StreamSchedule

__all__ = ["SimulatedDeviceArray", "SimulatedGpu"]


class SimulatedDeviceArray(FakeDeviceArray):
    """An array in the memory of a :class:`SimulatedGpu` (SIMULATED: plain process memory). Arithmetic on it
    gives arrays of this type, as CuPy arithmetic gives CuPy arrays."""

    def __repr__(self) -> str:
        return "SIMULATED device " + np.asarray(self).__repr__()

    def __str__(self) -> str:
        return "SIMULATED device " + np.asarray(self).__str__()


def _stream_parts(schedule: StreamSchedule, chunk_size: int) -> StreamChunks:
    """The CPU engine for the stream whose schedule this is: AES-256 round keys 0-1 are the key itself."""
    words = schedule.words
    key = words[sched.RK : sched.RK + 8].astype(">u4").tobytes()
    aad = words[sched.AAD : sched.AAD + 8].astype(">u4").tobytes()
    prefix = words[sched.PREFIX : sched.PREFIX + 2].astype(">u4").tobytes()[:7]
    return StreamChunks(key, aad, prefix, chunk_size, threads=1)


class _EngineGCM(FakeGCM):
    """:class:`~cchet.gpu.fake_device.FakeDevice`'s launches, their work done by the CPU engine straight into
    the destination (no plaintext temporaries)."""

    def __init__(self, device: FakeDevice, schedule: StreamSchedule, chunk_size: int, ready: Any) -> None:
        super().__init__(device, schedule, chunk_size, ready)
        self._chunks = _stream_parts(schedule, chunk_size)

    def compute_seal(self, src: Any, dst: Any, n: int, batch: Batch) -> None:
        sealed = n + 16 * batch.n_chunks
        self._chunks.seal_chunks(
            np.asarray(src[:n]).data, np.asarray(dst[:sealed]).data, batch.first_index, final=batch.final
        )

    def compute_open(self, src: Any, dst: Any, n: int, sealed_len: int, batch: Batch) -> npt.NDArray[np.bool_]:
        try:
            self._chunks.open_chunks(
                np.asarray(src[:sealed_len]).data, np.asarray(dst[:n]).data, batch.first_index, final=batch.final
            )
        except IntegrityError:  # the engine zeroed the batch's plaintext already
            return np.zeros(batch.n_chunks, dtype=bool)
        return np.ones(batch.n_chunks, dtype=bool)


class SimulatedGpu(FakeDevice):
    """SIMULATED GPU ``index`` with attestation identity ``identity`` (the SHA-256 of the simulated GPU's
    certificate, as its simulated reports carry it). See the module docstring."""

    gcm_class = _EngineGCM

    def __init__(self, index: int = 0, *, identity: str = "") -> None:
        super().__init__(index)
        self.name = f"SIMULATED GPU {index} (CPU engine; protects nothing)"
        self.identity = identity
        self._lock = threading.Lock()
        self._regions: dict[int, int] = {}

    def __repr__(self) -> str:
        return f"SimulatedGpu({self.index}, SIMULATED: protects nothing)"

    def empty(self, nbytes: int) -> SimulatedDeviceArray:
        region = mmap.mmap(-1, max(1, nbytes))
        array = np.frombuffer(region, dtype=np.uint8, count=nbytes).view(SimulatedDeviceArray)
        start = np.frombuffer(region, dtype=np.uint8).ctypes.data
        with self._lock:
            self._regions[start] = max(1, nbytes)
        weakref.finalize(region, self._forget, start)  # the mapping lives as long as any view of it
        return array

    def _forget(self, start: int) -> None:
        with self._lock:
            self._regions.pop(start, None)

    def regions(self) -> list[tuple[int, int]]:
        """``(address, size)`` of every live allocation of this device's memory."""
        with self._lock:
            return sorted(self._regions.items())

    def as_bytes(self, array: Any) -> FakeDeviceArray:
        flat = super().as_bytes(array)
        return flat.view(SimulatedDeviceArray)

    def from_bytes(self, buf: Any, dtype: npt.DTypeLike, shape: tuple[int, ...]) -> SimulatedDeviceArray:
        return np.asarray(buf).view(dtype).reshape(shape).view(SimulatedDeviceArray)

    def to_device(self, host: npt.NDArray[Any]) -> SimulatedDeviceArray:
        """A plain copy of a host array into device memory (as ``cupy.asarray`` would make)."""
        src = np.ascontiguousarray(host)
        out = self.empty(src.nbytes)
        out[:] = src.reshape(-1).view(np.uint8)
        return self.from_bytes(out, src.dtype, src.shape)
