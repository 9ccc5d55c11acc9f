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

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from cchet.crypto import format as fmt
from cchet.crypto.engine import ChunkCipher
from cchet.crypto.oneshot import new_header, open_header
from cchet.errors import IntegrityError
from cchet.gpu.device import Batch, Device, Event, Verdicts
from cchet.gpu.geometry import plan
from cchet.gpu.schedule import StreamSchedule
from cchet.gpu.stats import Span, TransferStats
from cchet.hazmat.keys import DataKey

__all__ = ["BounceChannel"]

DEFAULT_CHUNK_SIZE = 1 << 20


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


class BounceChannel:
    """A ring of ``slots`` pinned staging slots of ``slot_chunks`` sealed chunks each, on ``device``.

    ``device`` is a CUDA device index (a real GPU through CuPy) or a :class:`~cchet.gpu.device.Device`
    such as the SIMULATED :class:`~cchet.gpu.fake_device.FakeDevice`. ``streams`` pairs of CUDA streams
    (copy, compute) take batches in turn; ``threads`` CPU threads seal or open batches.

    Raises :class:`~cchet.DeviceUnavailable` (naming the fix) without CuPy or the GPU, ``ValueError``
    for bad sizes. :attr:`last_stats` holds the per-stage timings of the latest transfer. Use one
    channel from one thread at a time; close it (or use ``with``) to free its slots and threads.
    """

    def __init__(
        self,
        device: int | Device = 0,
        *,
        slots: int = 4,
        slot_chunks: int = 4,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        streams: int = 2,
        threads: int | None = None,
    ) -> None:
        fmt.check_chunk_size(chunk_size)
        for name, value in (("slots", slots), ("slot_chunks", slot_chunks), ("streams", streams)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if slots < 2:
            raise ValueError("slots must be >= 2 so that sealing and copying can overlap")
        if isinstance(device, int):
            from cchet.gpu.cuda_device import CudaDevice

            dev: Device = CudaDevice(device)
        else:
            dev = device
        self.device = dev
        self.chunk_size = chunk_size
        self.slot_chunks = slot_chunks
        self.threads = threads or min(4, max(1, slots - 1))
        slot_bytes = slot_chunks * (chunk_size + fmt.TAG_SIZE)
        self._host = [dev.pinned(slot_bytes) for _ in range(slots)]
        self._ring = [dev.empty(slot_bytes) for _ in range(slots)]
        self._pairs = [(dev.stream(), dev.stream()) for _ in range(streams)]
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="cchet-bounce")
        self._lock = threading.Lock()
        self.last_stats: TransferStats | None = None

    @property
    def slots(self) -> int:
        return len(self._host)

    def close(self) -> None:
        """Stop the CPU threads; the slots are freed with the channel."""
        self._pool.shutdown(wait=True)
        close = getattr(self.device, "close", None)
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
            f"slot_chunks={self.slot_chunks}, chunk_size={self.chunk_size}, streams={len(self._pairs)})"
        )

    def _repr_html_(self) -> str:
        stats = self.last_stats._repr_html_() if self.last_stats else "<i>no transfer yet</i>"
        return f"<div><code>{self!r}</code><br>{stats}</div>"

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
        ``dtype``/``shape`` (default: flat bytes).

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
        schedule = StreamSchedule.for_stream(key, header, context, plan(self.slot_chunks, self.chunk_size))
        gcm = dev.gcm(schedule, self.chunk_size)
        out = dev.empty(batches.n)
        S = self.slots
        stats = self._stats("host to device", mode, batches, ("cpu", "copy", "open"))
        origin = self._pairs[0][0].record()
        t0 = time.perf_counter()
        cpu_spans: list[Span] = []
        futures: dict[int, Future[None]] = {}
        copy_done: dict[int, Event] = {}
        kernel_done: dict[int, Event] = {}
        verdicts: dict[int, Verdicts] = {}
        device_events: list[tuple[str, int, Event, Event]] = []

        def cpu_stage(b: int) -> None:
            start = time.perf_counter() - t0
            fill(b, self._host[b % S])
            cpu_spans.append(Span("cpu", b, start, time.perf_counter() - t0))

        def issue(b: int) -> None:
            futures.pop(b).result()
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
            verdicts[b] = gcm.open(self._ring[slot], out[off : off + length], batches.batch(b), kernel_stream)
            kernel_done[b] = k1 = kernel_stream.record()
            device_events.extend([("copy", b, c0, c1), ("open", b, k0, k1)])

        def failed_so_far() -> int | None:
            for b in sorted(verdicts):
                if kernel_done[b].done() and not verdicts[b].all_authentic():
                    return b
            return None

        issued = 0
        bad: int | None = None
        try:
            for b in range(batches.count):
                if b >= S:
                    while issued <= b - S:
                        issue(issued)
                        issued += 1
                    copy_done[b - S].synchronize()  # backpressure: the host slot must be copied out
                    bad = failed_so_far()
                    if bad is not None:
                        break
                futures[b] = self._pool.submit(cpu_stage, b)
                while issued < b and futures[issued].done():
                    issue(issued)
                    issued += 1
            if bad is None:
                while issued < batches.count:
                    issue(issued)
                    issued += 1
        finally:
            for f in futures.values():
                f.result()
            for pair in self._pairs:
                for s in pair:
                    s.synchronize()
        if bad is None:
            bad = next((b for b in sorted(verdicts) if not verdicts[b].all_authentic()), None)
        self._finish_stats(stats, t0, origin, cpu_spans, device_events)
        if bad is not None:
            stats.aborted_at = bad
            zero_stream = self._pairs[0][1]
            dev.fill_zero(out, zero_stream)
            zero_stream.synchronize()
            raise IntegrityError()
        return out

    # ----------------------------------------------------------------------------------- device to host

    def to_host(self, array: Any) -> npt.NDArray[Any]:
        """Copy a C-contiguous device array to a new host array of the same dtype and shape, sealed on
        the device under a fresh one-transfer key and opened by CPU threads.

        Raises :class:`~cchet.IntegrityError` (the returned buffer is never handed out) if a chunk
        fails on the way, ``TypeError``/``ValueError`` for an array not on this device.
        """
        src = self.device.as_bytes(array)
        n = int(src.nbytes)
        stream_key = DataKey.generate()
        header = new_header(stream_key, n, self.chunk_size)
        cipher = ChunkCipher(stream_key, header, b"", threads=1)
        out = np.empty(n, dtype=np.uint8)
        batches = _Batches(n, self.chunk_size, self.slot_chunks)

        def open_from(b: int, slot: npt.NDArray[np.uint8]) -> None:
            off, length = batches.plain(b)
            _, sealed_len = batches.sealed(b)
            cipher.open_chunks(
                slot[:sealed_len].data,
                out[off : off + length].data,
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
        except IntegrityError:
            out[:] = 0
            raise
        result: npt.NDArray[Any] = out.view(array.dtype).reshape(array.shape)
        return result

    def to_host_sealed(self, array: Any, key: DataKey, *, context: bytes = b"") -> bytes:
        """Seal a device array on the device under ``key`` and ``context`` and return the sealed stream
        (format v1, this channel's chunk size); the host only ever holds its ciphertext."""
        src = self.device.as_bytes(array)
        n = int(src.nbytes)
        header = new_header(key, n, self.chunk_size)
        out = np.empty(fmt.sealed_size(n, self.chunk_size), dtype=np.uint8)
        out[: fmt.HEADER_SIZE] = np.frombuffer(header.pack(), dtype=np.uint8)
        body = out[fmt.HEADER_SIZE :]
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
        return out.tobytes()

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
        schedule = StreamSchedule.for_stream(key, header, context, plan(self.slot_chunks, self.chunk_size))
        gcm = dev.gcm(schedule, self.chunk_size)
        S = self.slots
        stats = self._stats("device to host", mode, batches, ("seal", "copy", "cpu"))
        origin = self._pairs[0][0].record()
        t0 = time.perf_counter()
        cpu_spans: list[Span] = []
        futures: dict[int, Future[None]] = {}
        copy_done: dict[int, Event] = {}
        device_events: list[tuple[str, int, Event, Event]] = []

        def cpu_stage(b: int, done: Event) -> None:
            done.synchronize()
            start = time.perf_counter() - t0
            drain(b, self._host[b % S])
            cpu_spans.append(Span("cpu", b, start, time.perf_counter() - t0))

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
                gcm.seal(src[off : off + length], self._ring[slot], batches.batch(b), kernel_stream)
                k1 = kernel_stream.record()
                copy_stream.wait(k1)
                c0 = copy_stream.record()
                dev.download(self._host[slot][:sealed_len], self._ring[slot][:sealed_len], copy_stream)
                copy_done[b] = c1 = copy_stream.record()
                device_events.extend([("seal", b, k0, k1), ("copy", b, c0, c1)])
                futures[b] = self._pool.submit(cpu_stage, b, c1)
        finally:
            errors = []
            for f in futures.values():
                try:
                    f.result()
                except IntegrityError as e:
                    errors.append(e)
            for pair in self._pairs:
                for s in pair:
                    s.synchronize()
            self._finish_stats(stats, t0, origin, cpu_spans, device_events)
        if errors:
            raise IntegrityError()

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
