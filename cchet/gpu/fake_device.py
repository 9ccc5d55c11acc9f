"""A SIMULATED device for CI: numpy arrays as device memory, threads as streams, the numpy reference as the
AES-GCM kernel. It protects nothing and is never chosen implicitly: pass it to
:class:`~cchet.gpu.channel.BounceChannel` explicitly (``device=FakeDevice()``).

Each stream is one worker thread running its queue in order; events are set when the worker reaches
them, with a timestamp, so the channel's per-stage timings and its overlap are real wall-clock facts of
this process. ``copy_bytes_per_s`` slows copies to a chosen bandwidth so tests can see stages overlap.
Every pinned buffer it hands out stays listed in :attr:`FakeDevice.pinned_buffers` so tests can inspect
what the staging slots ever held.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from cchet.gpu import reference
from cchet.gpu.device import Batch
from cchet.gpu.schedule import StreamSchedule

__all__ = ["FakeDevice", "FakeDeviceArray"]


class FakeDeviceArray(np.ndarray):
    """A numpy array standing for device memory of a :class:`FakeDevice` (SIMULATED)."""


class _Event:
    def __init__(self) -> None:
        self._set = threading.Event()
        self.at = 0.0

    def fire(self) -> None:
        self.at = time.perf_counter()
        self._set.set()

    def synchronize(self) -> None:
        self._set.wait()

    def done(self) -> bool:
        return self._set.is_set()

    def seconds_since(self, origin: Any) -> float:
        self.synchronize()
        origin.synchronize()
        return self.at - float(origin.at)


class _Stream:
    """One worker thread executing queued callables in order."""

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self.error: BaseException | None = None

    def _run(self) -> None:
        while True:
            op = self._queue.get()
            if op is None:
                return
            try:
                op()
            except BaseException as e:  # surfaced by synchronize(); the stream keeps draining
                self.error = self.error or e

    def submit(self, op: Callable[[], None]) -> None:
        self._queue.put(op)

    def record(self) -> _Event:
        ev = _Event()
        self._queue.put(ev.fire)
        return ev

    def wait(self, event: Any) -> None:
        self._queue.put(event.synchronize)

    def synchronize(self) -> None:
        self.record().synchronize()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self._queue.put(None)


class _Verdicts:
    def __init__(self, done: _Event) -> None:
        self.values: npt.NDArray[np.bool_] | None = None
        self._done = done

    def all_authentic(self) -> bool:
        self._done.synchronize()
        return self.values is not None and bool(self.values.all())


class _FakeGCM:
    def __init__(self, schedule: StreamSchedule, chunk_size: int, kernel_seconds: float) -> None:
        self._schedule = schedule
        self._cs = chunk_size
        self._delay = kernel_seconds

    def seal(self, src: Any, dst: Any, batch: Batch, stream: Any) -> None:
        n = (batch.n_chunks - 1) * self._cs + batch.last_len

        def run() -> None:
            time.sleep(self._delay)
            body, _ = reference.seal_batch(self._schedule, src[:n], self._cs, batch.first_index, final=batch.final)
            dst[: len(body)] = np.frombuffer(body, dtype=np.uint8)

        stream.submit(run)

    def open(self, src: Any, dst: Any, batch: Batch, stream: Any) -> _Verdicts:
        n = (batch.n_chunks - 1) * self._cs + batch.last_len
        sealed_len = n + 16 * batch.n_chunks
        verdicts: _Verdicts

        def run() -> None:
            time.sleep(self._delay)
            plain, ok, _ = reference.open_batch(
                self._schedule, src[:sealed_len], self._cs, batch.first_index, final=batch.final
            )
            dst[:n] = np.frombuffer(plain, dtype=np.uint8)
            verdicts.values = ok

        stream.submit(run)
        verdicts = _Verdicts(stream.record())
        return verdicts


class FakeDevice:
    """SIMULATED GPU: see the module docstring. ``name`` says so; ``simulated`` is True."""

    simulated = True

    def __init__(self, index: int = 0, *, copy_bytes_per_s: float | None = None, kernel_seconds: float = 0.0) -> None:
        self.index = index
        self.name = f"SIMULATED fake device {index} (numpy; protects nothing)"
        self._bandwidth = copy_bytes_per_s
        self._kernel_seconds = kernel_seconds
        self._streams: list[_Stream] = []
        self.pinned_buffers: list[npt.NDArray[np.uint8]] = []

    def pinned(self, nbytes: int) -> npt.NDArray[np.uint8]:
        buf = np.zeros(nbytes, dtype=np.uint8)
        self.pinned_buffers.append(buf)
        return buf

    def empty(self, nbytes: int) -> FakeDeviceArray:
        return np.empty(nbytes, dtype=np.uint8).view(FakeDeviceArray)

    def stream(self) -> _Stream:
        s = _Stream(f"cchet-fake-stream-{len(self._streams)}")
        self._streams.append(s)
        return s

    def _copy(self, dst: Any, src: Any, stream: Any) -> None:
        if len(dst) != len(src):
            raise ValueError(f"copy of {len(src)} bytes into {len(dst)}")

        def run() -> None:
            if self._bandwidth:
                time.sleep(len(src) / self._bandwidth)
            dst[:] = src

        stream.submit(run)

    def upload(self, dst: Any, src: npt.NDArray[np.uint8], stream: Any) -> None:
        self._copy(dst, src, stream)

    def download(self, dst: npt.NDArray[np.uint8], src: Any, stream: Any) -> None:
        self._copy(dst, src, stream)

    def fill_zero(self, dst: Any, stream: Any) -> None:
        def run() -> None:
            dst[:] = 0

        stream.submit(run)

    def gcm(self, schedule: StreamSchedule, chunk_size: int) -> _FakeGCM:
        return _FakeGCM(schedule, chunk_size, self._kernel_seconds)

    def as_bytes(self, array: Any) -> FakeDeviceArray:
        if not isinstance(array, FakeDeviceArray):
            raise TypeError(f"expected an array on {self.name}, got {type(array).__name__}")
        if not array.flags.c_contiguous:
            raise ValueError("device array must be C-contiguous")
        return array.reshape(-1).view(np.uint8).view(FakeDeviceArray)

    def from_bytes(self, buf: Any, dtype: npt.DTypeLike, shape: tuple[int, ...]) -> FakeDeviceArray:
        return np.asarray(buf).view(dtype).reshape(shape).view(FakeDeviceArray)

    def is_device_array(self, obj: object) -> bool:
        return isinstance(obj, FakeDeviceArray)

    def close(self) -> None:
        """Stop the stream threads."""
        for s in self._streams:
            s.close()
        self._streams.clear()
