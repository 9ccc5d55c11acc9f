"""What the bounce-buffer channel needs from a device: memory, streams, events, copies, the AES-GCM kernel.

Two implementations: :class:`cchet.gpu.cuda_device.CudaDevice` (CuPy, a real GPU) and
:class:`cchet.gpu.fake_device.FakeDevice` (numpy arrays and threads, SIMULATED, for CI). The channel is
written once against these protocols, so CI runs the same ring and pipeline the GPU runs.

Stream order. cchet runs its device work on private non-blocking streams, which do not wait for the
caller's current stream by themselves. Every public entry point therefore makes its streams wait on an
event recorded on :meth:`Device.current_stream` before touching the caller's memory, and makes the
current stream wait on its own final events before returning, so work the caller queued before the call
(an asynchronous ``cupy.asarray``, ``x * 2``) is finished first, and work queued after it sees the
results. :meth:`DeviceGCM.seal` / :meth:`DeviceGCM.open` do the same per launch unless told
``join_caller=False`` (the channel and :mod:`cchet.gpu.ondevice` join once per call instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from cchet.errors import KernelRefused
from cchet.gpu.schedule import StreamSchedule

__all__ = [
    "Batch",
    "Device",
    "DeviceGCM",
    "Event",
    "KernelRefused",
    "Launched",
    "Stream",
    "Verdicts",
    "after_caller",
    "caller_waits",
]


@dataclass(frozen=True, slots=True)
class Batch:
    """Chunks ``first_index .. first_index + n_chunks - 1`` of a stream; all full but the last, which holds
    ``last_len`` bytes; ``final`` when the last is the stream's final chunk."""

    first_index: int
    n_chunks: int
    last_len: int
    final: bool


class Event(Protocol):
    """A point on a stream: done once the stream has run everything queued before it."""

    def synchronize(self) -> None:
        """Block the calling thread until the event is done."""

    def done(self) -> bool:
        """Whether the event is done, without blocking."""

    def seconds_since(self, origin: Event) -> float:
        """Device time from ``origin`` to this event (both done)."""


class Stream(Protocol):
    """An in-order queue of device work."""

    def record(self) -> Event:
        """An event at the current end of the queue."""

    def wait(self, event: Event) -> None:
        """Later work on this stream starts only after ``event`` (which may be on another stream)."""

    def synchronize(self) -> None:
        """Block until everything queued so far has run."""


class Launched(Protocol):
    """One launch of the kernels; its words are read on the host at most once each."""

    def done(self) -> bool:
        """Whether the launch (and its report copy, if any) has run, without blocking."""

    def accepted(self) -> bool:
        """True when the kernel accepted the launch (status word 0). Blocks until the launch is done."""


class Verdicts(Launched, Protocol):
    """Per-chunk verdicts of one open launch; readable after its stream reached them."""

    def all_authentic(self) -> bool:
        """True when the kernel accepted the launch and every chunk's tag verified. Blocks until the
        launch is done."""


class DeviceGCM(Protocol):
    """The AES-GCM kernels bound to one stream's schedule on one device.

    ``report``, when given, is a host-visible (pinned) uint32 array of ``1 + batch.n_chunks`` words that
    the launch fills, queued on ``stream`` after the kernels: the status word, then (open) the per-chunk
    verdicts. The result then reads them from there, with no device read of its own.
    """

    def seal(
        self,
        src: Any,
        dst: Any,
        batch: Batch,
        stream: Stream,
        *,
        report: npt.NDArray[np.uint32] | None = None,
        join_caller: bool = True,
    ) -> Launched:
        """Queue: seal the batch's plaintext chunks in ``src`` into sealed chunks in ``dst``."""

    def open(
        self,
        src: Any,
        dst: Any,
        batch: Batch,
        stream: Stream,
        *,
        report: npt.NDArray[np.uint32] | None = None,
        join_caller: bool = True,
    ) -> Verdicts:
        """Queue: open sealed chunks of ``src`` into ``dst``; failed chunks are zeroed on the device."""


class Device(Protocol):
    """One device as the channel sees it. ``simulated`` is True for anything that is not a real GPU.

    ``sm_count`` and ``blocks_per_sm`` (resident blocks of the kernels on one multiprocessor) size the
    launch grids (:func:`cchet.gpu.geometry.plan`).
    """

    index: int
    simulated: bool
    name: str

    @property
    def sm_count(self) -> int:
        """Multiprocessors of the device."""

    @property
    def blocks_per_sm(self) -> int:
        """Thread blocks of the AES-GCM kernels that one multiprocessor holds at once."""

    def pinned(self, nbytes: int) -> npt.NDArray[np.uint8]:
        """Page-locked host memory (``cudaHostAlloc``), the staging slots."""

    def empty(self, nbytes: int) -> Any:
        """Uninitialised device bytes (a 1-D uint8 device array)."""

    def stream(self) -> Stream:
        """A new non-default stream."""

    def current_stream(self) -> Stream:
        """The calling thread's current stream (CuPy's ``get_current_stream()``), where the caller's
        own work is queued; cchet's streams wait on it and it waits on them (module docstring)."""

    def upload(self, dst: Any, src: npt.NDArray[np.uint8], stream: Stream) -> None:
        """Queue a host-to-device copy of ``src`` (pinned) into device bytes ``dst`` (same size)."""

    def download(self, dst: npt.NDArray[np.uint8], src: Any, stream: Stream) -> None:
        """Queue a device-to-host copy of device bytes ``src`` into ``dst`` (pinned, same size)."""

    def fill_zero(self, dst: Any, stream: Stream) -> None:
        """Queue zeroing device bytes ``dst``."""

    def gcm(self, schedule: StreamSchedule, chunk_size: int, *, stream: Stream | None = None) -> DeviceGCM:
        """The kernels for one stream: the schedule is copied to the device once, on ``stream`` (default:
        a private one); every launch is ordered after that copy."""

    def as_bytes(self, array: Any) -> Any:
        """A flat uint8 view of a C-contiguous device array; ``ValueError`` otherwise."""

    def from_bytes(self, buf: Any, dtype: npt.DTypeLike, shape: tuple[int, ...]) -> Any:
        """View device bytes as an array of ``dtype`` and ``shape``."""

    def is_device_array(self, obj: object) -> bool:
        """Whether ``obj`` is an array in this device's memory."""


def after_caller(device: Device, streams: list[Stream]) -> Stream:
    """Make each of ``streams`` wait for everything queued so far on the caller's current stream, and
    return that stream (see the module docstring)."""
    caller = device.current_stream()
    mark = caller.record()
    for s in streams:
        s.wait(mark)
    return caller


def caller_waits(caller: Stream, streams: list[Stream]) -> None:
    """Make the caller's stream wait for everything queued so far on each of ``streams``."""
    for s in streams:
        caller.wait(s.record())
