"""What the bounce-buffer channel needs from a device: memory, streams, events, copies, the AES-GCM kernel.

Two implementations: :class:`cchet.gpu.cuda_device.CudaDevice` (CuPy, a real GPU) and
:class:`cchet.gpu.fake_device.FakeDevice` (numpy arrays and threads, SIMULATED, for CI). The channel is
written once against these protocols, so CI runs the same ring and pipeline the GPU runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from cchet.gpu.schedule import StreamSchedule

__all__ = ["Batch", "Device", "DeviceGCM", "Event", "Stream", "Verdicts"]


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


class Verdicts(Protocol):
    """Per-chunk verdicts of one open launch; readable after its stream reached them."""

    def all_authentic(self) -> bool:
        """True when every chunk's tag verified. Blocks until the launch is done."""


class DeviceGCM(Protocol):
    """The AES-GCM kernels bound to one stream's schedule on one device."""

    def seal(self, src: Any, dst: Any, batch: Batch, stream: Stream) -> object:
        """Queue: seal the batch's plaintext chunks in ``src`` into sealed chunks in ``dst``."""

    def open(self, src: Any, dst: Any, batch: Batch, stream: Stream) -> Verdicts:
        """Queue: open sealed chunks of ``src`` into ``dst``; failed chunks are zeroed on the device."""


class Device(Protocol):
    """One device as the channel sees it. ``simulated`` is True for anything that is not a real GPU."""

    index: int
    simulated: bool
    name: str

    def pinned(self, nbytes: int) -> npt.NDArray[np.uint8]:
        """Page-locked host memory (``cudaHostAlloc``), the staging slots."""

    def empty(self, nbytes: int) -> Any:
        """Uninitialised device bytes (a 1-D uint8 device array)."""

    def stream(self) -> Stream:
        """A new non-default stream."""

    def upload(self, dst: Any, src: npt.NDArray[np.uint8], stream: Stream) -> None:
        """Queue a host-to-device copy of ``src`` (pinned) into device bytes ``dst`` (same size)."""

    def download(self, dst: npt.NDArray[np.uint8], src: Any, stream: Stream) -> None:
        """Queue a device-to-host copy of device bytes ``src`` into ``dst`` (pinned, same size)."""

    def fill_zero(self, dst: Any, stream: Stream) -> None:
        """Queue zeroing device bytes ``dst``."""

    def gcm(self, schedule: StreamSchedule, chunk_size: int) -> DeviceGCM:
        """The kernels for one stream: the schedule is copied to the device once."""

    def as_bytes(self, array: Any) -> Any:
        """A flat uint8 view of a C-contiguous device array; ``ValueError`` otherwise."""

    def from_bytes(self, buf: Any, dtype: npt.DTypeLike, shape: tuple[int, ...]) -> Any:
        """View device bytes as an array of ``dtype`` and ``shape``."""

    def is_device_array(self, obj: object) -> bool:
        """Whether ``obj`` is an array in this device's memory."""
