"""BounceChannel on a real GPU: round trips, pre-sealed input, sealed output, ciphertext-only staging."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from cchet import seal, unseal
from cchet.crypto import format as fmt
from cchet.gpu.channel import BounceChannel
from cchet.hazmat.keys import DataKey


def test_round_trip_and_overlap(cp: Any) -> None:
    a = np.random.default_rng(0).standard_normal((4096, 4096)).astype(np.float32)  # 64 MiB
    with BounceChannel(0, slots=4, slot_chunks=4, chunk_size=1 << 20, streams=2) as ch:
        d = ch.to_device(a)
        assert isinstance(d, cp.ndarray) and d.dtype == cp.float32 and d.shape == a.shape
        assert cp.array_equal(d, cp.asarray(a))
        up = ch.last_stats
        assert up is not None and not up.simulated and up.batches == 16
        assert up.overlap_seconds("copy", "open") + up.overlap_seconds("cpu", "copy") > 0
        back = ch.to_host(d)
        assert np.array_equal(back, a)


def test_pre_sealed_and_sealed_output(cp: Any) -> None:
    key = DataKey.generate()
    data = os.urandom((16 << 20) + 5)
    blob = seal(key, data, context=b"rest", chunk_size=1 << 20)
    with BounceChannel(0, chunk_size=1 << 20) as ch:
        d = ch.to_device(blob, key=key, context=b"rest")
        assert d.get().tobytes() == data
        out = ch.to_host_sealed(d, key, context=b"result")
    assert unseal(key, out, context=b"result") == data


def test_staging_slots_hold_ciphertext_only(cp: Any) -> None:
    canary = b"CCHET-CANARY-PLAINTEXT!!"
    data = np.frombuffer(canary * ((8 << 20) // len(canary)), dtype=np.uint8)
    with BounceChannel(0, chunk_size=1 << 20) as ch:
        d = ch.to_device(data)
        ch.to_host(d)
        staged = [bytes(slot) for slot in ch._host]
    assert any(any(s) for s in staged)
    assert not any(canary[:16] in s for s in staged)


def test_default_sizing_reused_output_and_the_callers_stream(cp: Any) -> None:
    """Slots and threads sized from the host by default; to_host into a reused buffer; input produced on
    the caller's own non-blocking stream is finished before it is sealed."""
    a = np.random.default_rng(1).standard_normal((2048, 4096)).astype(np.float32)  # 32 MiB
    out = np.empty(a.nbytes, dtype=np.uint8)
    with BounceChannel(0, chunk_size=1 << 20) as ch:
        assert ch.threads >= 1 and ch.slots >= 3
        with cp.cuda.Stream(non_blocking=True):
            d = ch.to_device(a)
            y = d * 2  # queued on the caller's stream
            for _ in range(2):
                back = ch.to_host(y, out=out)
                assert np.shares_memory(back, out) and np.array_equal(back, a * 2)
        key = DataKey.generate()
        buf = bytearray(fmt.sealed_size(a.nbytes, 1 << 20))
        n = ch.to_host_sealed_into(d, key, buf)
    assert unseal(key, bytes(buf[:n])) == a.tobytes()
