"""``BounceChannel``: sealed transfers between host memory and one GPU through pinned staging slots.

Host to device, for plaintext: CPU threads seal chunk batch k+1 into a free pinned slot while slot k is
copied to the device and batch k-1 is opened by the kernel into the destination; the ring holds
``slots`` batches, and a full ring blocks the sealers (backpressure). Device to host is the mirror
image: the kernel seals, the slot is copied back, CPU threads open it. Pre-sealed input (a stream
sealed at rest, e.g. by ``cchet seal``) takes the same ring with no CPU crypto at all, and
:meth:`BounceChannel.to_host_sealed` returns a sealed stream without opening it on the host.

What it protects. The staging slots, the copy engine's path and anything between hold ciphertext only;
data sealed at rest or in a remote TEE is opened only inside the GPU; every chunk is authenticated on
the device (a failure raises :class:`~cchet.IntegrityError` and zeroes the destination before the
call returns, so no caller sees unauthenticated data). For plaintext input the channel seals under a
fresh one-transfer key that lives in this process.

What it does not. It does not replace the driver's protection in CC mode (the driver still encrypts its
own bounce buffers); it does not protect plaintext in this process's memory, which needs a CPU TEE; and
on a GPU not in CC mode, device memory and the key schedule copied there are not protected at all
(``cchet info`` says which holds). With :class:`~cchet.gpu.fake_device.FakeDevice` it protects nothing.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as _wait
from typing import Any

import numpy as np
import numpy.typing as npt

from cchet.crypto import format as fmt
from cchet.crypto.engine import ChunkCipher
from cchet.crypto.oneshot import new_header, open_header
from cchet.errors import IntegrityError
from cchet.gpu.device import (
    Batch,
    Device,
    Event,
    KernelRefused,
    Launched,
    Stream,
    Verdicts,
    after_caller,
    caller_waits,
)
from cchet.gpu.geometry import Geometry, plan
from cchet.gpu.schedule import StreamSchedule
from cchet.gpu.stats import Span, TransferStats
from cchet.hazmat.keys import DataKey

__all__ = ["BounceChannel", "default_slots", "default_threads"]

DEFAULT_CHUNK_SIZE = 1 << 20
MAX_DEFAULT_THREADS = 32
# Pinned staging memory a channel allocates by default at most (and as much again on the device).
STAGING_BUDGET = 256 << 20


def wait_futures(futures: list[Future[None]]) -> list[BaseException]:
    """Wait for every future; return the exceptions they raised, in order."""
    _wait(futures)
    return [e for f in futures if (e := f.exception()) is not None]


class _Batches:
    """Chunk batches of one stream: batch b holds ``per`` chunks (the last may hold fewer)."""

    def __init__(self, plaintext_length: int, chunk_size: int, per: int) -> None:
        self.n = plaintext_length
        self.cs = chunk_size
        self.per = per
        self.chunks = fmt.chunk_count(plaintext_length, chunk_size)
        self.count = -(-self.chunks // per)

    def first(self, b: int) -> int:
        return b * self.per

    def n_chunks(self, b: int) -> int:
        return min(self.per, self.chunks - b * self.per)

    def plain(self, b: int) -> tuple[int, int]:
        """``(offset, length)`` of the batch's plaintext."""
        off = b * self.per * self.cs
        return off, min(self.n - off, self.per * self.cs) if self.n else 0

    def sealed(self, b: int) -> tuple[int, int]:
        """``(offset, length)`` of the batch's chunks in the stream body."""
        _, length = self.plain(b)
        return b * self.per * (self.cs + fmt.TAG_SIZE), length + fmt.TAG_SIZE * self.n_chunks(b)

    def last_len(self, b: int) -> int:
        _, length = self.plain(b)
        return length - (self.n_chunks(b) - 1) * self.cs

    def final(self, b: int) -> bool:
        return b == self.count - 1

    def batch(self, b: int) -> Batch:
        return Batch(self.first(b), self.n_chunks(b), self.last_len(b), self.final(b))


def default_threads() -> int:
    """CPU sealer threads of a channel by default: the cores this process may run on, at most 32."""
    return max(1, min(MAX_DEFAULT_THREADS, len(os.sched_getaffinity(0))))


def default_slots(threads: int, streams: int, slot_bytes: int) -> int:
    """Staging slots by default: one per sealer thread plus two per stream pair (one batch being copied,
    one in the kernel), so neither side waits for a slot while the other has work; at least 3, and no
    more than :data:`STAGING_BUDGET` bytes of pinned memory (as much again on the device) allow."""
    fits = max(2, STAGING_BUDGET // slot_bytes)
    return min(max(3, threads + 2 * streams), fits)


class BounceChannel:
    """A ring of ``slots`` pinned staging slots of ``slot_chunks`` sealed chunks each, on ``device``.

    ``device`` is a CUDA device index (a real GPU through CuPy) or a :class:`~cchet.gpu.device.Device`
    such as the SIMULATED :class:`~cchet.gpu.fake_device.FakeDevice`. ``streams`` pairs of CUDA streams
    (copy, compute) take batches in turn; ``threads`` CPU threads seal or open batches (default:
    :func:`default_threads`, the host's cores) and ``slots`` defaults to :func:`default_slots`.

    Every transfer is ordered after the work the caller queued on its current stream before the call,
    and the caller's current stream waits for the transfer's results (``cchet.gpu.device``).

    Raises :class:`~cchet.DeviceUnavailable` (naming the fix) without CuPy or the GPU, ``ValueError``
    for bad sizes. :attr:`last_stats` holds the per-stage timings of the latest transfer. Use one
    channel from one thread at a time; close it (or use ``with``) to free its slots and threads.
    """

    def __init__(
        self,
        device: int | Device = 0,
        *,
        slots: int | None = None,
        slot_chunks: int = 4,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        streams: int = 2,
        threads: int | None = None,
    ) -> None:
        fmt.check_chunk_size(chunk_size)
        for name, value in (("slots", slots), ("slot_chunks", slot_chunks), ("streams", streams), ("threads", threads)):
            if value is None and name in ("slots", "threads"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if slots is not None and slots < 2:
            raise ValueError("slots must be >= 2 so that sealing and copying can overlap")
        slot_bytes = slot_chunks * (chunk_size + fmt.TAG_SIZE)
        self.threads = threads if threads is not None else default_threads()
        n_slots = slots if slots is not None else default_slots(self.threads, streams, slot_bytes)
        self._owns_device = isinstance(device, int)
        if isinstance(device, int):
            from cchet.gpu.cuda_device import CudaDevice

            dev: Device = CudaDevice(device)
        else:
            dev = device
        self.device = dev
        self.chunk_size = chunk_size
        self.slot_chunks = slot_chunks
        self._host = [dev.pinned(slot_bytes) for _ in range(n_slots)]
        self._ring = [dev.empty(slot_bytes) for _ in range(n_slots)]
        self._pairs = [(dev.stream(), dev.stream()) for _ in range(streams)]
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="cchet-bounce")
        self._lock = threading.Lock()
        self._report = np.zeros(0, dtype=np.uint32)
        self._geometry: Geometry | None = None
        self.last_stats: TransferStats | None = None

    @property
    def slots(self) -> int:
        return len(self._host)

    def close(self) -> None:
        """Stop the CPU threads and this channel's streams; the slots are freed with the channel. A
        device passed in stays usable (its owner closes it)."""
        self._pool.shutdown(wait=True)
        for s in self._streams():
            close = getattr(s, "close", None)
            if callable(close):
                close()

    def __enter__(self) -> BounceChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        sim = ", SIMULATED" if self.device.simulated else ""
        return (
            f"BounceChannel(device={self.device.name!r}{sim}, slots={self.slots}, "
            f"slot_chunks={self.slot_chunks}, chunk_size={self.chunk_size}, streams={len(self._pairs)}, "
            f"threads={self.threads})"
        )

    def _repr_html_(self) -> str:
        stats = self.last_stats._repr_html_() if self.last_stats else "<i>no transfer yet</i>"
        return f"<div><code>{self!r}</code><br>{stats}</div>"

    def _streams(self) -> list[Stream]:
        return [s for pair in self._pairs for s in pair]

    def _plan(self) -> Geometry:
        if self._geometry is None:
            dev = self.device
            self._geometry = plan(self.slot_chunks, self.chunk_size, sms=dev.sm_count, blocks_per_sm=dev.blocks_per_sm)
        return self._geometry

    def _reports(self, batches: _Batches) -> npt.NDArray[np.uint32]:
        """One row of ``1 + per`` words per batch (status, verdicts), in pinned memory reused across
        transfers and grown when a transfer needs more."""
        words = batches.count * (batches.per + 1)
        if self._report.size < words:
            grown = max(words, 2 * self._report.size)
            self._report = self.device.pinned(4 * grown).view(np.uint32)
        return self._report[:words].reshape(batches.count, batches.per + 1)

    # ----------------------------------------------------------------------------------- host to device

    def to_device(
        self,
        data: object,
        *,
        key: DataKey | None = None,
        context: bytes = b"",
        dtype: npt.DTypeLike = np.uint8,
        shape: tuple[int, ...] | None = None,
    ) -> Any:
        """Move ``data`` to the device, sealed all the way; returns a device array.

        Without ``key``, ``data`` is a C-contiguous host array (or bytes-like): it is sealed on CPU
        threads under a fresh one-transfer key and opened by the kernel; the result has its dtype and
        shape. With ``key``, ``data`` is a sealed stream (format v1) under that key and ``context``: its
        chunks go to the device as they are, with no CPU crypto, and are opened by the kernel into
        ``dtype``/``shape`` (default: flat bytes). Work queued on the caller's current stream after the
        call sees the result.

        Raises :class:`~cchet.IntegrityError` if any chunk fails (the device destination is zeroed
        first; the pipeline stops at the first failure it sees), ``SealedFormatError`` for a
        malformed stream, ``TypeError``/``ValueError`` for bad arguments.
        """
        if key is None:
            arr = np.ascontiguousarray(np.asarray(data))
            src = arr.reshape(-1).view(np.uint8)
            stream_key = DataKey.generate()
            header = new_header(stream_key, src.nbytes, self.chunk_size)
            cipher = ChunkCipher(stream_key, header, context, threads=1)
            batches = _Batches(src.nbytes, self.chunk_size, self.slot_chunks)

            def seal_into(b: int, slot: npt.NDArray[np.uint8]) -> None:
                off, length = batches.plain(b)
                _, sealed_len = batches.sealed(b)
                cipher.seal_chunks(
                    src[off : off + length].data,
                    slot[:sealed_len].data,
                    batches.first(b),
                    final=batches.final(b),
                )

            out = self._h2d(
                batches,
                seal_into,
                key=stream_key,
                header=header,
                context=context,
                mode="sealed on CPU threads",
            )
            return self.device.from_bytes(out, arr.dtype, arr.shape)

        blob = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)  # type: ignore[arg-type]
        header = open_header(key, memoryview(blob.data))
        layout = fmt.body_layout(header, len(blob) - fmt.HEADER_SIZE)
        if header.chunk_size != self.chunk_size:
            raise ValueError(
                f"the stream's chunk size is {header.chunk_size}, this channel's {self.chunk_size}: "
                "make a channel with chunk_size equal to the stream's"
            )
        body = blob[fmt.HEADER_SIZE :]
        batches = _Batches(layout.plaintext_length, self.chunk_size, self.slot_chunks)

        def stage_into(b: int, slot: npt.NDArray[np.uint8]) -> None:
            off, length = batches.sealed(b)
            slot[:length] = body[off : off + length]

        out = self._h2d(batches, stage_into, key=key, header=header, context=context, mode="pre-sealed, no CPU crypto")
        n = layout.plaintext_length
        dt = np.dtype(dtype)
        return self.device.from_bytes(out, dt, shape if shape is not None else (n // dt.itemsize,))

    def _h2d(
        self,
        batches: _Batches,
        fill: Callable[[int, npt.NDArray[np.uint8]], None],
        *,
        key: DataKey,
        header: fmt.Header,
        context: bytes,
        mode: str,
    ) -> Any:
        dev = self.device
        schedule = StreamSchedule.for_stream(key, header, context, self._plan())
        out = dev.empty(batches.n)
        streams = self._streams()
        caller = after_caller(dev, streams)  # out may reuse memory the caller's stream used last
        gcm = dev.gcm(schedule, self.chunk_size, stream=self._pairs[0][1])
        reports = self._reports(batches)
        S, count = self.slots, batches.count
        stats = self._stats("host to device", mode, batches, ("cpu", "copy", "open"))
        origin = self._pairs[0][0].record()
        t0 = time.perf_counter()
        cpu_spans: list[Span] = []
        futures: dict[int, Future[None]] = {}
        copy_done: dict[int, Event] = {}
        kernel_done: dict[int, Event] = {}
        launches: dict[int, Verdicts] = {}
        unchecked: deque[int] = deque()
        device_events: list[tuple[str, int, Event, Event]] = []
        stop = threading.Event()

        def cpu_stage(b: int) -> None:
            if b >= S:
                copy_done[b - S].synchronize()  # backpressure: the host slot must be copied out
            if stop.is_set():
                return
            start = time.perf_counter() - t0
            fill(b, self._host[b % S])
            cpu_spans.append(Span("cpu", b, start, time.perf_counter() - t0))

        def issue(b: int) -> None:
            slot = b % S
            copy_stream, kernel_stream = self._pairs[b % len(self._pairs)]
            _, sealed_len = batches.sealed(b)
            if b >= S:
                copy_stream.wait(kernel_done[b - S])  # the device slot is free once its open has run
            c0 = copy_stream.record()
            dev.upload(self._ring[slot][:sealed_len], self._host[slot][:sealed_len], copy_stream)
            copy_done[b] = c1 = copy_stream.record()
            kernel_stream.wait(c1)
            k0 = kernel_stream.record()
            off, length = batches.plain(b)
            n_chunks = batches.n_chunks(b)
            launches[b] = gcm.open(
                self._ring[slot],
                out[off : off + length],
                batches.batch(b),
                kernel_stream,
                report=reports[b, : 1 + n_chunks],
                join_caller=False,
            )
            kernel_done[b] = k1 = kernel_stream.record()
            unchecked.append(b)
            device_events.extend([("copy", b, c0, c1), ("open", b, k0, k1)])

        def first_failure(*, wait: bool) -> int | None:
            """Read, in batch order, the verdicts of every launch that is done (``wait``: of all of
            them); each exactly once. The first failed batch, if any."""
            while unchecked and (wait or launches[unchecked[0]].done()):
                b = unchecked.popleft()
                if not launches[b].all_authentic():
                    return b
            return None

        bad: int | None = None
        try:
            for b in range(min(S, count)):
                futures[b] = self._pool.submit(cpu_stage, b)
            for b in range(count):
                futures.pop(b).result()
                issue(b)
                if b + S < count:
                    futures[b + S] = self._pool.submit(cpu_stage, b + S)
                bad = first_failure(wait=False)
                if bad is not None:
                    break
        finally:
            stop.set()
            wait_futures(list(futures.values()))
            for s in streams:
                s.synchronize()
        if bad is None:
            bad = first_failure(wait=True)
        self._finish_stats(stats, t0, origin, cpu_spans, device_events)
        if bad is not None:
            stats.aborted_at = bad
            zero_stream = self._pairs[0][1]
            dev.fill_zero(out, zero_stream)
            caller_waits(caller, [zero_stream])
            zero_stream.synchronize()
            raise IntegrityError()
        caller_waits(caller, streams)
        return out

    # ----------------------------------------------------------------------------------- device to host

    def to_host(self, array: Any, *, out: npt.NDArray[Any] | None = None) -> npt.NDArray[Any]:
        """Copy a C-contiguous device array to host memory, sealed on the device under a fresh
        one-transfer key and opened by CPU threads. Returns a new host array of the same dtype and
        shape, or, with ``out`` (a writable C-contiguous host array of exactly ``array.nbytes`` bytes,
        reusable across calls so that no fresh pages are faulted in), a view of ``out`` as that dtype
        and shape. Work the caller queued on its current stream before the call (what produces
        ``array``) runs first.

        Raises :class:`~cchet.IntegrityError` (the returned buffer is never handed out; ``out`` is
        zeroed) if a chunk fails on the way, ``TypeError``/``ValueError`` for an array not on this
        device or a bad ``out``.
        """
        src = self.device.as_bytes(array)
        n = int(src.nbytes)
        if out is None:
            dest = np.empty(n, dtype=np.uint8)
        else:
            if not isinstance(out, np.ndarray) or not out.flags.c_contiguous or not out.flags.writeable:
                raise TypeError("out must be a writable C-contiguous numpy array")
            if out.nbytes != n:
                raise ValueError(f"out holds {out.nbytes} bytes, the array {n}")
            dest = out.reshape(-1).view(np.uint8)
        stream_key = DataKey.generate()
        header = new_header(stream_key, n, self.chunk_size)
        cipher = ChunkCipher(stream_key, header, b"", threads=1)
        batches = _Batches(n, self.chunk_size, self.slot_chunks)

        def open_from(b: int, slot: npt.NDArray[np.uint8]) -> None:
            off, length = batches.plain(b)
            _, sealed_len = batches.sealed(b)
            cipher.open_chunks(
                slot[:sealed_len].data,
                dest[off : off + length].data,
                batches.first(b),
                final=batches.final(b),
            )

        try:
            self._d2h(
                batches,
                src,
                open_from,
                key=stream_key,
                header=header,
                context=b"",
                mode="opened on CPU threads",
            )
        except (IntegrityError, KernelRefused):
            dest[:] = 0
            raise
        result: npt.NDArray[Any] = dest.view(array.dtype).reshape(array.shape)
        return result

    def to_host_sealed(self, array: Any, key: DataKey, *, context: bytes = b"") -> bytes:
        """Seal a device array on the device under ``key`` and ``context`` and return the sealed stream
        (format v1, this channel's chunk size); the host only ever holds its ciphertext. See
        :meth:`to_host_sealed_into` to write it into a reusable buffer instead.

        Raises :class:`~cchet.gpu.device.KernelRefused` if the kernel refuses a launch.
        """
        n = int(self.device.as_bytes(array).nbytes)
        out = np.empty(fmt.sealed_size(n, self.chunk_size), dtype=np.uint8)
        self.to_host_sealed_into(array, key, out, context=context)
        return out.tobytes()

    def to_host_sealed_into(self, array: Any, key: DataKey, out: object, *, context: bytes = b"") -> int:
        """:meth:`to_host_sealed` into ``out``, a writable buffer of at least ``cchet.sealed_size(
        array.nbytes, chunk_size)`` bytes (reuse it across calls: no fresh pages, no extra copy);
        returns the sealed stream's size. Work the caller queued on its current stream before the call
        runs first. Raises ``ValueError`` for a short or read-only ``out``,
        :class:`~cchet.gpu.device.KernelRefused` if the kernel refuses a launch.
        """
        src = self.device.as_bytes(array)
        n = int(src.nbytes)
        size = fmt.sealed_size(n, self.chunk_size)
        view = memoryview(out).cast("B")  # type: ignore[arg-type]
        if view.readonly or len(view) < size:
            raise ValueError(f"out must be a writable buffer of >= {size} bytes")
        dest = np.frombuffer(view, dtype=np.uint8, count=size)
        header = new_header(key, n, self.chunk_size)
        dest[: fmt.HEADER_SIZE] = np.frombuffer(header.pack(), dtype=np.uint8)
        body = dest[fmt.HEADER_SIZE :]
        batches = _Batches(n, self.chunk_size, self.slot_chunks)

        def copy_from(b: int, slot: npt.NDArray[np.uint8]) -> None:
            off, length = batches.sealed(b)
            body[off : off + length] = slot[:length]

        self._d2h(
            batches,
            src,
            copy_from,
            key=key,
            header=header,
            context=context,
            mode="sealed on device, kept sealed",
        )
        return size

    def _d2h(
        self,
        batches: _Batches,
        src: Any,
        drain: Callable[[int, npt.NDArray[np.uint8]], None],
        *,
        key: DataKey,
        header: fmt.Header,
        context: bytes,
        mode: str,
    ) -> None:
        dev = self.device
        schedule = StreamSchedule.for_stream(key, header, context, self._plan())
        streams = self._streams()
        caller = after_caller(dev, streams)  # src may still be in production on the caller's stream
        gcm = dev.gcm(schedule, self.chunk_size, stream=self._pairs[0][1])
        reports = self._reports(batches)
        S = self.slots
        stats = self._stats("device to host", mode, batches, ("seal", "copy", "cpu"))
        origin = self._pairs[0][0].record()
        t0 = time.perf_counter()
        cpu_spans: list[Span] = []
        futures: dict[int, Future[None]] = {}
        copy_done: dict[int, Event] = {}
        launches: dict[int, Launched] = {}
        device_events: list[tuple[str, int, Event, Event]] = []
        stop = threading.Event()
        failed: list[int] = []

        def cpu_stage(b: int, done: Event) -> None:
            done.synchronize()
            if stop.is_set():
                return
            if not launches[b].accepted():  # its status word, read once, from the pinned report
                raise KernelRefused("the kernel refused a seal launch of the transfer; nothing is returned")
            start = time.perf_counter() - t0
            try:
                drain(b, self._host[b % S])
            except IntegrityError:
                failed.append(b)
                raise
            cpu_spans.append(Span("cpu", b, start, time.perf_counter() - t0))

        errors: list[BaseException] = []
        try:
            for b in range(batches.count):
                slot = b % S
                copy_stream, kernel_stream = self._pairs[b % len(self._pairs)]
                if b >= S:
                    futures.pop(b - S).result()  # backpressure: the host slot must be drained
                    kernel_stream.wait(copy_done[b - S])  # the device slot must be copied out
                off, length = batches.plain(b)
                _, sealed_len = batches.sealed(b)
                k0 = kernel_stream.record()
                launches[b] = gcm.seal(
                    src[off : off + length],
                    self._ring[slot],
                    batches.batch(b),
                    kernel_stream,
                    report=reports[b, :1],
                    join_caller=False,
                )
                k1 = kernel_stream.record()
                copy_stream.wait(k1)
                c0 = copy_stream.record()
                dev.download(self._host[slot][:sealed_len], self._ring[slot][:sealed_len], copy_stream)
                copy_done[b] = c1 = copy_stream.record()
                device_events.extend([("seal", b, k0, k1), ("copy", b, c0, c1)])
                futures[b] = self._pool.submit(cpu_stage, b, c1)
        except BaseException as e:
            errors.append(e)
        finally:
            if errors:
                stop.set()
            errors += wait_futures(list(futures.values()))
            for s in streams:
                s.synchronize()
            caller_waits(caller, streams)
            self._finish_stats(stats, t0, origin, cpu_spans, device_events)
            stats.aborted_at = min(failed) if failed else None
        if errors:
            refused = next((e for e in errors if isinstance(e, KernelRefused)), None)
            if refused is not None:
                raise refused
            if any(isinstance(e, IntegrityError) for e in errors):
                raise IntegrityError()
            raise errors[0]

    # ----------------------------------------------------------------------------------------- stats

    def _stats(self, direction: str, mode: str, batches: _Batches, stages: tuple[str, ...]) -> TransferStats:
        stats = TransferStats(
            direction=direction,
            mode=mode,
            device=self.device.name,
            simulated=self.device.simulated,
            nbytes=batches.n,
            chunk_size=self.chunk_size,
            batches=batches.count,
            slots=self.slots,
            streams=len(self._pairs),
            threads=self.threads,
            stages=stages,
        )
        self.last_stats = stats
        return stats

    @staticmethod
    def _finish_stats(
        stats: TransferStats,
        t0: float,
        origin: Event,
        cpu_spans: list[Span],
        device_events: list[tuple[str, int, Event, Event]],
    ) -> None:
        stats.wall_seconds = time.perf_counter() - t0
        spans = list(cpu_spans)
        for stage, b, start, end in device_events:
            spans.append(Span(stage, b, start.seconds_since(origin), end.seconds_since(origin)))
        stats.spans = sorted(spans, key=lambda s: (s.start, s.stage))
