"""A SIMULATED device for CI: numpy arrays as device memory, threads as streams, the numpy reference as the
AES-GCM kernel. It protects nothing and is never chosen implicitly: pass it to
:class:`~cchet.gpu.channel.BounceChannel` explicitly (``device=FakeDevice()``).

Each stream is one worker thread running its queue in order; events are set when the worker reaches
them, with a timestamp, so the channel's per-stage timings and its overlap are real wall-clock facts of
this process. Like CuPy, the device has a *current stream* per thread (:meth:`FakeDevice.current_stream`;
the device's default stream unless :meth:`FakeDevice.use` says otherwise), where a caller's own work runs;
queue work on it with ``submit`` to play a caller whose input is still being produced.
``copy_bytes_per_s`` slows copies to a chosen bandwidth so tests can see stages overlap. Every pinned
buffer it hands out stays listed in :attr:`FakeDevice.pinned_buffers` so tests can inspect what the
staging slots ever held, and every launch in :attr:`FakeDevice.launches`, with how often its result was read.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from cchet.gpu import reference
from cchet.gpu import schedule as sched
from cchet.gpu.device import Batch
from cchet.gpu.geometry import DEFAULT_BLOCKS_PER_SM, DEFAULT_LANES, DEFAULT_SMS
from cchet.gpu.schedule import StreamSchedule

__all__ = ["FakeDevice", "FakeDeviceArray", "FakeGCM", "FakeLaunch"]


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
        self.name = name
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self.error: BaseException | None = None
        self.closed = False

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
        """Queue ``op`` (a plain callable) behind everything queued so far."""
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
        if not self.closed:
            self.closed = True
            self._queue.put(None)


class FakeLaunch:
    """One SIMULATED launch: its status word and (open) verdicts, filled when its stream reaches it.

    ``reads`` counts how often the host read the result (the channel reads each launch once).
    """

    def __init__(self, n_chunks: int, seal: bool) -> None:
        self.n_chunks = n_chunks
        self.seal = seal
        self.status = 0
        self.values: npt.NDArray[np.bool_] | None = None
        self.reads = 0
        self._done: _Event | None = None
        self._report: npt.NDArray[np.uint32] | None = None

    def done(self) -> bool:
        assert self._done is not None
        return self._done.done()

    def _read(self) -> None:
        assert self._done is not None
        self._done.synchronize()
        self.reads += 1

    def accepted(self) -> bool:
        self._read()
        if self._report is not None:
            return int(self._report[0]) == 0
        return self.status == 0

    def all_authentic(self) -> bool:
        self._read()
        if self._report is not None:
            words = self._report
            return int(words[0]) == 0 and (self.seal or bool((words[1 : 1 + self.n_chunks] == 1).all()))
        if self.status != 0:
            return False
        return self.seal or (self.values is not None and bool(self.values.all()))


def _kernel_status(schedule: StreamSchedule) -> int:
    """The status word the real kernel would set: 1 when the schedule's geometry words are not its own."""
    lanes, seg_blocks = (int(w) for w in schedule.words[sched.GEOM : sched.GEOM + 2])
    return 0 if lanes == DEFAULT_LANES and seg_blocks and seg_blocks % lanes == 0 else 1


class FakeGCM:
    def __init__(self, device: FakeDevice, schedule: StreamSchedule, chunk_size: int, ready: _Event) -> None:
        self._device = device
        self._schedule = schedule
        self._cs = chunk_size
        self._delay = device.kernel_seconds
        self._ready = ready

    def _start(self, launch: FakeLaunch, stream: Any, report: npt.NDArray[np.uint32] | None, join: bool) -> Any:
        if report is not None:
            need = 1 if launch.seal else 1 + launch.n_chunks
            if report.dtype != np.uint32 or report.size < need:
                raise ValueError(f"report must be a uint32 host array of >= {need} words")
            launch._report = report
        self._device.launches.append(launch)
        caller = self._device.current_stream() if join else None
        if caller is not None:
            stream.wait(caller.record())
        stream.wait(self._ready)
        return caller

    def _finish(self, launch: FakeLaunch, stream: Any, caller: Any) -> None:
        launch._done = stream.record()
        if caller is not None:
            caller.wait(launch._done)

    def compute_seal(self, src: Any, dst: Any, n: int, batch: Batch) -> None:
        """The kernel's work for a seal launch (here: the numpy reference), run on the stream's thread."""
        body, _ = reference.seal_batch(self._schedule, src[:n], self._cs, batch.first_index, final=batch.final)
        dst[: len(body)] = np.frombuffer(body, dtype=np.uint8)

    def compute_open(self, src: Any, dst: Any, n: int, sealed_len: int, batch: Batch) -> npt.NDArray[np.bool_]:
        """The kernel's work for an open launch, returning the per-chunk verdicts (failed chunks zeroed)."""
        plain, ok, _ = reference.open_batch(
            self._schedule, src[:sealed_len], self._cs, batch.first_index, final=batch.final
        )
        dst[:n] = np.frombuffer(plain, dtype=np.uint8)
        return ok

    def seal(
        self,
        src: Any,
        dst: Any,
        batch: Batch,
        stream: Any,
        *,
        report: npt.NDArray[np.uint32] | None = None,
        join_caller: bool = True,
    ) -> FakeLaunch:
        n = (batch.n_chunks - 1) * self._cs + batch.last_len
        launch = FakeLaunch(batch.n_chunks, seal=True)
        caller = self._start(launch, stream, report, join_caller)
        status = _kernel_status(self._schedule)

        def run() -> None:
            time.sleep(self._delay)
            launch.status = status
            if status == 0:
                self.compute_seal(src, dst, n, batch)
            if launch._report is not None:
                launch._report[0] = status

        stream.submit(run)
        self._finish(launch, stream, caller)
        return launch

    def open(
        self,
        src: Any,
        dst: Any,
        batch: Batch,
        stream: Any,
        *,
        report: npt.NDArray[np.uint32] | None = None,
        join_caller: bool = True,
    ) -> FakeLaunch:
        n = (batch.n_chunks - 1) * self._cs + batch.last_len
        sealed_len = n + 16 * batch.n_chunks
        launch = FakeLaunch(batch.n_chunks, seal=False)
        caller = self._start(launch, stream, report, join_caller)
        status = _kernel_status(self._schedule)

        def run() -> None:
            time.sleep(self._delay)
            launch.status = status
            ok = self.compute_open(src, dst, n, sealed_len, batch)
            launch.values = ok
            if launch._report is not None:
                launch._report[0] = status
                launch._report[1 : 1 + batch.n_chunks] = ok

        stream.submit(run)
        self._finish(launch, stream, caller)
        return launch


class FakeDevice:
    """SIMULATED GPU: see the module docstring. ``name`` says so; ``simulated`` is True.

    ``sm_count`` and ``blocks_per_sm`` only shape the launch geometry (default: an H100's figures).
    """

    simulated = True
    gcm_class: type[FakeGCM] = FakeGCM  # what runs a launch's work (SimulatedGpu: the CPU engine)

    def __init__(
        self,
        index: int = 0,
        *,
        copy_bytes_per_s: float | None = None,
        kernel_seconds: float = 0.0,
        sm_count: int = DEFAULT_SMS,
        blocks_per_sm: int = DEFAULT_BLOCKS_PER_SM,
    ) -> None:
        self.index = index
        self.name = f"SIMULATED fake device {index} (numpy; protects nothing)"
        self.sm_count = sm_count
        self.blocks_per_sm = blocks_per_sm
        self._bandwidth = copy_bytes_per_s
        self.kernel_seconds = kernel_seconds
        self._streams: list[_Stream] = []  # every live stream, the default one too; changed in place only
        weakref.finalize(self, _close_all, self._streams)  # threads stop when the device is collected
        self._lock = threading.Lock()
        self._default: _Stream | None = None
        self._local = threading.local()
        self.pinned_buffers: list[npt.NDArray[np.uint8]] = []
        self.launches: list[FakeLaunch] = []

    def pinned(self, nbytes: int) -> npt.NDArray[np.uint8]:
        buf = np.zeros(nbytes, dtype=np.uint8)
        self.pinned_buffers.append(buf)
        return buf

    def empty(self, nbytes: int) -> FakeDeviceArray:
        return np.empty(nbytes, dtype=np.uint8).view(FakeDeviceArray)

    def stream(self) -> _Stream:
        with self._lock:
            self._streams[:] = [s for s in self._streams if not s.closed]
            s = _Stream(f"cchet-fake-stream-{len(self._streams)}")
            self._streams.append(s)
        return s

    def current_stream(self) -> _Stream:
        """This thread's current stream: the one :meth:`use` set, else the device's default stream."""
        stack: list[_Stream] = getattr(self._local, "stack", [])
        if stack:
            return stack[-1]
        with self._lock:
            if self._default is None or self._default.closed:
                self._default = _Stream("cchet-fake-default-stream")
                self._streams.append(self._default)
            return self._default

    @contextlib.contextmanager
    def use(self, stream: _Stream) -> Iterator[_Stream]:
        """Make ``stream`` this thread's current stream inside the block (CuPy's ``with stream:``)."""
        stack: list[_Stream] = self._local.__dict__.setdefault("stack", [])
        stack.append(stream)
        try:
            yield stream
        finally:
            stack.pop()

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

    def gcm(self, schedule: StreamSchedule, chunk_size: int, *, stream: Any = None) -> FakeGCM:
        if stream is not None:
            ready = stream.record()  # the "schedule copy" is queued there
        else:
            ready = _Event()
            ready.fire()
        return self.gcm_class(self, schedule, chunk_size, ready)

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
        """Stop the stream threads (the default stream too; it restarts when next asked for)."""
        with self._lock:
            self._default = None
            _close_all(self._streams)


def _close_all(streams: list[_Stream]) -> None:
    for s in list(streams):
        s.close()
    streams.clear()
