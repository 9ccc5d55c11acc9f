"""The CUDA kernels on a real GPU against the numpy reference (intermediates too) and the CPU engine."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

from cchet import seal, unseal
from cchet.crypto import format as fmt
from cchet.errors import IntegrityError
from cchet.gpu import loader, ondevice, reference
from cchet.gpu.cuda_device import CudaDevice
from cchet.gpu.device import Batch
from cchet.gpu.geometry import plan
from cchet.gpu.schedule import StreamSchedule
from cchet.hazmat.keys import DataKey

KEY = DataKey.generate()


def test_precompile_and_module_cache() -> None:
    assert loader.precompile([0]) == [0]
    assert loader.module(0) is loader.module(0)
    for name in loader.KERNEL_NAMES:
        assert loader.module(0).get_function(name) is not None


@pytest.mark.parametrize(
    ("n", "cs", "target"),
    [
        (0, 4096, 528),
        (100, 4096, 528),
        (3 * 4096 + 33, 4096, 528),
        (2 * 8192, 8192, 4),
        (5 << 20, 1 << 20, 528),
    ],
)
def test_kernel_matches_reference_intermediates(cp: Any, n: int, cs: int, target: int) -> None:
    dev = CudaDevice(0)
    data = os.urandom(n)
    header = fmt.Header(fmt.chunk_log2_of(cs), KEY.key_id, os.urandom(32), os.urandom(7), n)
    chunks = fmt.chunk_count(n, cs)
    geometry = plan(chunks, cs, target_blocks=target)
    schedule = StreamSchedule.for_stream(KEY, header, b"ctx", geometry)
    batch = Batch(0, chunks, n - (chunks - 1) * cs, True)
    expected, trace = reference.seal_batch(schedule, data, cs, 0, final=True)

    src = cp.asarray(np.frombuffer(data, dtype=np.uint8)) if n else cp.empty(0, dtype=cp.uint8)
    out = cp.empty(n + 16 * chunks, dtype=cp.uint8)
    gcm = dev.gcm(schedule, cs)
    stream = dev.stream()
    launch = gcm.seal(src, out, batch, stream)
    stream.synchronize()
    assert out.get().tobytes() == expected
    assert int(launch.status.get()[0]) == 0
    assert np.array_equal(launch.ek_j0.get().reshape(chunks, 4), trace.ek_j0)
    partial = launch.partial.get().reshape(chunks, geometry.segments, 4)
    for c in range(chunks):
        s = int(trace.segments[c])
        assert np.array_equal(partial[c, :s], trace.partial_sums[c, :s])

    back = cp.empty(n, dtype=cp.uint8)
    v = gcm.open(out, back, batch, stream)
    assert v.all_authentic()
    assert back.get().tobytes() == data


def test_kernel_zeroes_failed_chunk(cp: Any) -> None:
    dev = CudaDevice(0)
    cs, chunks = 4096, 3
    data = os.urandom(3 * cs)
    header = fmt.Header(12, KEY.key_id, os.urandom(32), os.urandom(7), len(data))
    schedule = StreamSchedule.for_stream(KEY, header, b"", plan(chunks, cs))
    body = bytearray(reference.seal_batch(schedule, data, cs, 0, final=True)[0])
    body[cs + 16 + 7] ^= 1
    out = cp.full(len(data), 0xEE, dtype=cp.uint8)
    v = dev.gcm(schedule, cs).open(
        cp.asarray(np.frombuffer(bytes(body), np.uint8)), out, Batch(0, 3, cs, True), dev.stream()
    )
    assert not v.all_authentic()
    assert v.verdicts.get().tolist() == [1, 0, 1]
    host = out.get().tobytes()
    assert host[cs : 2 * cs] == bytes(cs) and host[:cs] == data[:cs]


@pytest.mark.parametrize("cs", [64 << 10, 1 << 20])
def test_whole_streams_on_device_equal_cpu_engine(cp: Any, cs: int) -> None:
    data = os.urandom((64 << 20) + 12345)
    arr = cp.asarray(np.frombuffer(data, dtype=np.uint8))
    sealed = ondevice.seal(KEY, arr, context=b"big", chunk_size=cs)  # body at offset 72: 8-byte aligned
    assert unseal(KEY, sealed.get().tobytes(), context=b"big") == data
    cpu = seal(KEY, data, context=b"big", chunk_size=cs)
    back = ondevice.unseal(KEY, cp.asarray(np.frombuffer(cpu, dtype=np.uint8)), context=b"big")
    assert cp.array_equal(back, arr)
    bad = cp.asarray(np.frombuffer(cpu, dtype=np.uint8)).copy()
    bad[-20] ^= 1
    with pytest.raises(IntegrityError):
        ondevice.unseal(KEY, bad, context=b"big")


def test_misaligned_buffers_are_refused(cp: Any) -> None:
    dev = CudaDevice(0)
    header = fmt.Header(12, KEY.key_id, os.urandom(32), os.urandom(7), 4096)
    schedule = StreamSchedule.for_stream(KEY, header, b"", plan(1, 4096))
    buf = cp.zeros(8192, dtype=cp.uint8)
    with pytest.raises(ValueError, match="aligned"):
        dev.gcm(schedule, 4096).seal(buf[1:4097], buf[4100:], Batch(0, 1, 4096, True), dev.stream())
