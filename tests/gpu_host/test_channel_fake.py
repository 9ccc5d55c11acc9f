"""The bounce-buffer ring on the SIMULATED fake device: the same channel code a GPU runs, in CI.

The fake device protects nothing; these tests check the pipeline's logic: round trips, stage overlap
from per-stage timestamps, backpressure, tamper detection mid-transfer, and that staging slots only
ever hold ciphertext.
"""

from __future__ import annotations

import importlib.util
import os
import time
from typing import Any

import numpy as np
import pytest

from cchet import seal, unseal
from cchet.crypto import format as fmt
from cchet.errors import DeviceUnavailable, IntegrityError, SealedFormatError
from cchet.gpu import channel as channel_module
from cchet.gpu import schedule as sched
from cchet.gpu.channel import BounceChannel
from cchet.gpu.device import KernelRefused
from cchet.gpu.fake_device import FakeDevice
from cchet.gpu.schedule import StreamSchedule
from cchet.hazmat.keys import DataKey

CS = 4096
KEY = DataKey.generate()


def make(device: FakeDevice | None = None, **kw: Any) -> BounceChannel:
    opts: dict[str, Any] = {"slots": 3, "slot_chunks": 2, "chunk_size": CS, "streams": 2}
    opts.update(kw)
    return BounceChannel(device or FakeDevice(), **opts)


@pytest.mark.parametrize("n", [0, 1, CS - 1, CS, 2 * CS + 17, 13 * CS])
def test_round_trip_bytes(n: int) -> None:
    data = np.frombuffer(np.random.default_rng(n).bytes(n), dtype=np.uint8)
    with make() as ch:
        d = ch.to_device(data)
        assert np.asarray(d).tobytes() == data.tobytes()
        back = ch.to_host(d)
        assert back.tobytes() == data.tobytes()


def test_round_trip_keeps_dtype_and_shape() -> None:
    a = np.random.default_rng(1).standard_normal((37, 61)).astype(np.float32)
    with make() as ch:
        d = ch.to_device(a)
        assert d.dtype == np.float32 and d.shape == (37, 61)
        back = ch.to_host(d)
        assert back.dtype == np.float32 and back.shape == (37, 61)
        assert np.array_equal(back, a)


def test_pre_sealed_to_device_uses_no_cpu_crypto(monkeypatch: pytest.MonkeyPatch) -> None:
    key = DataKey.generate()
    a = np.arange(5000, dtype=np.int64)
    blob = seal(key, a.tobytes(), context=b"at-rest", chunk_size=CS)

    class NoCpuCrypto:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("CPU crypto used on the pre-sealed path")

    monkeypatch.setattr(channel_module, "ChunkCipher", NoCpuCrypto)
    dev = FakeDevice()
    with make(dev) as ch:
        d = ch.to_device(blob, key=key, context=b"at-rest", dtype=np.int64)
        assert np.array_equal(np.asarray(d), a)
        assert ch.last_stats is not None and ch.last_stats.mode.startswith("pre-sealed")
    body = blob[fmt.HEADER_SIZE :]
    staged = b"".join(bytes(buf) for buf in dev.pinned_buffers)
    assert body[: 2 * (CS + 16)] in staged or body[-100:] in staged  # slots held the stream's own bytes


def test_pre_sealed_wrong_context_and_key() -> None:
    key = DataKey.generate()
    blob = seal(key, bytes(3 * CS), context=b"a", chunk_size=CS)
    with make() as ch:
        with pytest.raises(IntegrityError):
            ch.to_device(blob, key=key, context=b"b")
        with pytest.raises(SealedFormatError, match="key_id"):
            ch.to_device(blob, key=DataKey.generate(), context=b"a")
        with pytest.raises(ValueError, match="chunk size"):
            ch.to_device(seal(key, b"x", chunk_size=2 * CS), key=key)


def test_to_host_sealed_stays_ciphertext_and_opens_on_cpu() -> None:
    key = DataKey.generate()
    a = np.random.default_rng(2).integers(0, 255, 7 * CS + 3, dtype=np.uint8)
    with make() as ch:
        d = ch.to_device(a)
        blob = ch.to_host_sealed(d, key, context=b"result")
    assert len(blob) == fmt.sealed_size(a.nbytes, CS)
    assert unseal(key, blob, context=b"result") == a.tobytes()


def test_stages_overlap() -> None:
    """Per-stage timestamps show batch k+1 sealing while k is copied and k-1 opened (and the mirror)."""
    dev = FakeDevice(copy_bytes_per_s=8e6, kernel_seconds=0.004)
    data = np.random.default_rng(3).integers(0, 255, 24 * CS, dtype=np.uint8)
    with make(dev, slots=3, slot_chunks=2) as ch:
        d = ch.to_device(data)
        up = ch.last_stats
        assert up is not None and up.batches == 12
        assert {s.stage for s in up.spans} == {"cpu", "copy", "open"}
        assert up.overlap_seconds("copy", "open") > 0
        assert up.overlap_seconds("cpu", "copy") + up.overlap_seconds("cpu", "open") > 0
        ch.to_host(d)
        down = ch.last_stats
        assert down is not None and down.overlap_seconds("seal", "copy") + down.overlap_seconds("copy", "cpu") > 0
        assert "SIMULATED" in down._repr_html_() and "SIMULATED" in ch._repr_html_()


def test_backpressure_bounds_batches_in_flight() -> None:
    """A batch is staged into a slot only after the batch that held the slot was copied out."""
    dev = FakeDevice(copy_bytes_per_s=4e6, kernel_seconds=0.002)
    data = np.zeros(16 * CS, dtype=np.uint8)
    slots = 2
    with make(dev, slots=slots, slot_chunks=1) as ch:
        ch.to_device(data)
        st = ch.last_stats
    assert st is not None and st.batches == 16
    cpu = {s.batch: s for s in st.spans if s.stage == "cpu"}
    copy = {s.batch: s for s in st.spans if s.stage == "copy"}
    for b in range(slots, 16):
        assert cpu[b].start >= copy[b - slots].end - 1e-6, b
    # ...and the ring really filled: some batch waited for a slot.
    assert any(cpu[b].start > cpu[b - 1].end + 1e-3 for b in range(slots, 16))


class TamperingDevice(FakeDevice):
    """SIMULATED untrusted host: flips one bit of the staged bytes of one copy."""

    def __init__(self, at_copy: int, **kw: Any) -> None:
        super().__init__(**kw)
        self.at_copy = at_copy
        self.copies = 0
        self.outputs: list[Any] = []

    def empty(self, nbytes: int) -> Any:
        buf = super().empty(nbytes)
        self.outputs.append(buf)
        return buf

    def _copy(self, dst: Any, src: Any, stream: Any) -> None:
        if self.copies == self.at_copy:
            src = src.copy()
            src[len(src) // 2] ^= 1
        self.copies += 1
        super()._copy(dst, src, stream)


def test_tamper_mid_transfer_to_device_zeroes_and_raises() -> None:
    dev = TamperingDevice(at_copy=3)
    data = np.full(10 * CS, 7, dtype=np.uint8)
    with make(dev, slots=3, slot_chunks=1) as ch:
        with pytest.raises(IntegrityError):
            ch.to_device(data)
        st = ch.last_stats
    assert st is not None and st.aborted_at == 3
    out = dev.outputs[-1]
    assert len(out) == data.nbytes and not np.asarray(out).any()  # the destination was zeroed


def test_tamper_mid_transfer_to_host_raises() -> None:
    dev = TamperingDevice(at_copy=10**9)
    with make(dev, slots=2, slot_chunks=1) as ch:
        d = ch.to_device(np.full(6 * CS, 9, dtype=np.uint8))
        dev.at_copy = dev.copies + 2  # the third download of the next transfer
        with pytest.raises(IntegrityError):
            ch.to_host(d)
        assert ch.last_stats is not None and ch.last_stats.aborted_at == 2


def test_canary_staging_slots_hold_ciphertext_only() -> None:
    canary = b"CCHET-CANARY-PLAINTEXT!!"
    data = np.frombuffer(canary * (5 * CS // len(canary) + 1), dtype=np.uint8)
    dev = FakeDevice()
    with make(dev) as ch:
        d = ch.to_device(data)
        ch.to_host(d)
    staged = [bytes(b) for b in dev.pinned_buffers]
    assert any(any(b) for b in staged)  # the slots were used
    assert not any(canary[:16] in b for b in staged)
    dev.pinned_buffers[0][:16] = np.frombuffer(canary[:16], dtype=np.uint8)  # the scan can see a leak
    assert canary[:16] in bytes(dev.pinned_buffers[0])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        BounceChannel(FakeDevice(), slots=1)
    with pytest.raises(ValueError):
        BounceChannel(FakeDevice(), chunk_size=1000)
    with make() as ch, pytest.raises(TypeError):
        ch.to_host(np.zeros(4))  # a host array is not on the device


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed here")
def test_real_device_without_cupy_is_unavailable() -> None:
    with pytest.raises(DeviceUnavailable, match=r"cchet\[gpu\]"):
        BounceChannel(0)


@pytest.mark.parametrize(("slots", "slot_chunks", "streams", "threads"), [(2, 1, 1, 1), (5, 3, 3, 2), (2, 8, 2, 4)])
def test_ring_configurations(slots: int, slot_chunks: int, streams: int, threads: int) -> None:
    data = np.random.default_rng(slots).integers(0, 255, 11 * CS + 5, dtype=np.uint8)
    with make(slots=slots, slot_chunks=slot_chunks, streams=streams, threads=threads) as ch:
        d = ch.to_device(data)
        assert np.array_equal(np.asarray(d), data)
        assert np.array_equal(ch.to_host(d), data)
        st = ch.last_stats
        assert st is not None and st.batches == -(-12 // slot_chunks) and st.slots == slots


# ------------------------------------------------------------------------------ stream order (review item 1)


def produced_late(dev: FakeDevice, data: np.ndarray, delay: float = 0.05) -> Any:
    """A device array whose contents the caller's current stream writes only after ``delay`` seconds: what
    an asynchronous ``cupy.asarray`` or ``x * 2`` still in flight looks like."""
    arr = dev.empty(data.nbytes)
    arr[:] = 0

    def produce() -> None:
        time.sleep(delay)
        arr[:] = data

    dev.current_stream().submit(produce)
    return arr


def test_device_to_host_waits_for_the_callers_stream() -> None:
    dev = FakeDevice()
    data = np.random.default_rng(7).integers(1, 255, 5 * CS + 3, dtype=np.uint8)
    key = DataKey.generate()
    with make(dev) as ch:
        assert np.array_equal(ch.to_host(produced_late(dev, data)), data)
        blob = ch.to_host_sealed(produced_late(dev, data), key)
        assert unseal(key, blob) == data.tobytes()
        with dev.use(dev.stream()) as other:  # another current stream: that one is waited for
            assert dev.current_stream() is other
            assert np.array_equal(ch.to_host(produced_late(dev, data)), data)
    dev.close()


def test_callers_stream_runs_after_to_device() -> None:
    dev = FakeDevice()
    data = np.arange(3 * CS, dtype=np.uint8)
    seen: list[bytes] = []
    with make(dev) as ch:
        out = ch.to_device(data)
        dev.current_stream().submit(lambda: seen.append(np.asarray(out).tobytes()))
        dev.current_stream().synchronize()
    assert seen == [data.tobytes()]
    dev.close()


# ------------------------------------------------------------------ verdicts read once (review item 2)


def test_each_verdict_is_read_once() -> None:
    dev = FakeDevice(kernel_seconds=0.001)
    data = np.random.default_rng(8).integers(0, 255, 20 * CS + 1, dtype=np.uint8)
    with make(dev, slots=3, slot_chunks=2) as ch:
        d = ch.to_device(data)
        up = list(dev.launches)
        assert len(up) == 11 and all(launch.reads == 1 for launch in up)
        assert np.array_equal(ch.to_host(d), data)
        down = dev.launches[len(up) :]
        assert len(down) == 11 and all(launch.reads == 1 for launch in down)  # each seal's status word


def test_tamper_stops_the_transfer_reading_each_verdict_once() -> None:
    dev = TamperingDevice(at_copy=2, kernel_seconds=0.002)
    data = np.full(40 * CS, 5, dtype=np.uint8)
    with make(dev, slots=3, slot_chunks=1, threads=1) as ch:
        with pytest.raises(IntegrityError):
            ch.to_device(data)
        st = ch.last_stats
    assert st is not None and st.aborted_at == 2
    assert dev.copies < 40  # stopped early: later batches were never copied
    assert all(launch.reads <= 1 for launch in dev.launches)
    assert [launch.reads for launch in dev.launches[:3]] == [1, 1, 1]
    assert not np.asarray(dev.outputs[-1]).any()


# ------------------------------------------------------------------------- sizing and reuse (item 2)


def test_default_threads_and_slots() -> None:
    with BounceChannel(FakeDevice(), chunk_size=CS) as ch:
        assert ch.threads == channel_module.default_threads() == min(32, len(os.sched_getaffinity(0)))
        assert ch.slots == max(3, ch.threads + 2 * 2)
        assert f"threads={ch.threads}" in repr(ch)
    assert channel_module.default_slots(16, 2, 4 << 20) == 20
    assert channel_module.default_slots(32, 2, 64 << 20) == 4  # the pinned budget caps it
    assert channel_module.default_slots(1, 1, 1 << 20) == 3
    with BounceChannel(FakeDevice(), slots=2, threads=5, chunk_size=CS) as ch:  # explicit values stay
        assert (ch.slots, ch.threads) == (2, 5)
    with pytest.raises(ValueError):
        BounceChannel(FakeDevice(), threads=0)


def test_to_host_into_a_reused_buffer() -> None:
    a = np.random.default_rng(9).standard_normal((33, 70)).astype(np.float32)
    out = np.empty(a.nbytes, dtype=np.uint8)
    with make() as ch:
        d = ch.to_device(a)
        for _ in range(2):
            back = ch.to_host(d, out=out)
            assert np.shares_memory(back, out) and back.shape == a.shape and np.array_equal(back, a)
        with pytest.raises(ValueError, match="bytes"):
            ch.to_host(d, out=np.empty(10, dtype=np.uint8))
        with pytest.raises(TypeError):
            ch.to_host(d, out=b"x" * a.nbytes)  # type: ignore[arg-type]


def test_to_host_sealed_into_a_reused_buffer() -> None:
    key = DataKey.generate()
    a = np.random.default_rng(10).integers(0, 255, 3 * CS + 9, dtype=np.uint8)
    buf = bytearray(fmt.sealed_size(a.nbytes, CS) + 5)
    with make() as ch:
        d = ch.to_device(a)
        size = ch.to_host_sealed_into(d, key, buf, context=b"c")
        assert size == fmt.sealed_size(a.nbytes, CS)
        assert unseal(key, bytes(buf[:size]), context=b"c") == a.tobytes()
        with pytest.raises(ValueError, match="writable"):
            ch.to_host_sealed_into(d, key, bytes(buf))


def test_tamper_into_a_reused_buffer_zeroes_it() -> None:
    dev = TamperingDevice(at_copy=10**9)
    out = np.full(6 * CS, 0xAA, dtype=np.uint8)
    with make(dev, slots=2, slot_chunks=1) as ch:
        d = ch.to_device(np.full(6 * CS, 9, dtype=np.uint8))
        dev.at_copy = dev.copies + 2
        with pytest.raises(IntegrityError):
            ch.to_host(d, out=out)
    assert not out.any()


# ----------------------------------------------------------------------- kernel status (review item 3a)


def test_a_refused_seal_launch_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """A schedule whose geometry words do not match the kernels: the kernel refuses, the transfer raises
    KernelRefused and returns nothing (before, the device-to-host seal path never read the status)."""
    real = StreamSchedule.for_stream

    def bad_geometry(*args: Any, **kwargs: Any) -> StreamSchedule:
        s = real(*args, **kwargs)
        words = s.words.copy()
        words[sched.GEOM + 1] = 100  # not a multiple of the lanes
        return StreamSchedule(words=words, geometry=s.geometry)

    with make() as ch:
        d = ch.to_device(np.ones(3 * CS, dtype=np.uint8))
        monkeypatch.setattr(StreamSchedule, "for_stream", bad_geometry)
        with pytest.raises(KernelRefused):
            ch.to_host_sealed(d, DataKey.generate())
        out = np.full(3 * CS, 7, dtype=np.uint8)
        with pytest.raises(KernelRefused):
            ch.to_host(d, out=out)
        assert not out.any()


# --------------------------------------------------------------------- offsets past 4 GiB (review item 3e)


def test_batches_of_a_stream_longer_than_4_gib() -> None:
    """The channel's batch arithmetic for a 5 GiB stream (nothing allocated): offsets past 2^32 stay exact
    and tile the stream and its sealed body."""
    n, cs, per = (5 << 30) + 12345, 1 << 20, 4
    b = channel_module._Batches(n, cs, per)
    assert b.chunks == fmt.chunk_count(n, cs) and b.count == -(-b.chunks // per)
    plain_end = sealed_end = 0
    for i in range(b.count):
        off, length = b.plain(i)
        soff, slen = b.sealed(i)
        assert off == plain_end and soff == sealed_end
        assert slen == length + fmt.TAG_SIZE * b.n_chunks(i)
        assert b.batch(i).first_index * cs == off
        plain_end, sealed_end = off + length, soff + slen
    assert plain_end == n and sealed_end == fmt.sealed_size(n, cs) - fmt.HEADER_SIZE
    last = b.batch(b.count - 1)
    assert last.final and last.first_index * cs > 1 << 32 and last.last_len == 12345
