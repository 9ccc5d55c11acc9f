"""The bounce-buffer ring on the SIMULATED fake device: the same channel code a GPU runs, in CI.

The fake device protects nothing; these tests check the pipeline's logic: round trips, stage overlap
from per-stage timestamps, backpressure, tamper detection mid-transfer, and that staging slots only
ever hold ciphertext.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest

from cchet import seal, unseal
from cchet.crypto import format as fmt
from cchet.errors import DeviceUnavailable, IntegrityError, SealedFormatError
from cchet.gpu import channel as channel_module
from cchet.gpu.channel import BounceChannel
from cchet.gpu.fake_device import FakeDevice
from cchet.hazmat.keys import DataKey

CS = 4096


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
