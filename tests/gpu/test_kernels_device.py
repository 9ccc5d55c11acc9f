"""The CUDA kernels on a real GPU against the numpy reference (intermediates too) and the CPU engine."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

from cchet import seal, unseal
from cchet.crypto import format as fmt
from cchet.crypto.engine import ChunkCipher
from cchet.crypto.oneshot import seal_stream_into
from cchet.errors import IntegrityError
from cchet.gpu import loader, ondevice, reference
from cchet.gpu.cuda_device import CudaDevice
from cchet.gpu.device import Batch
from cchet.gpu.geometry import Geometry, plan
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
    launch = gcm.seal(src, out, batch, stream)  # joins the caller's stream, where src was copied
    stream.synchronize()
    launch.check()
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


def _random_bytes(cp: Any, n: int) -> Any:
    """``n`` random device bytes, made 256 MiB at a time (no temporary larger than 1 GiB)."""
    x = cp.empty(n, dtype=cp.uint8)
    step = 256 << 20
    for i in range(0, n, step):
        k = min(step, n - i)
        x[i : i + k] = (cp.random.random_sample(k, dtype=cp.float32) * 256).astype(cp.uint8)
    return x


def test_stream_longer_than_4_gib(cp: Any) -> None:
    """A 4 GiB + 1 MiB + 5 byte stream sealed and opened on the device: the chunks past 2^32 equal the CPU
    engine's, the round trip is exact, and a bit flipped past 4 GiB is caught (that chunk zeroed)."""
    cs = 1 << 20
    n = (4 << 30) + cs + 5
    free, _ = cp.cuda.runtime.memGetInfo()
    if free < 3 * n + (2 << 30):
        pytest.skip(f"needs about {(3 * n + (2 << 30)) >> 30} GiB of free device memory, {free >> 30} GiB free")
    x = _random_bytes(cp, n)
    sealed = ondevice.seal(KEY, x, context=b"big", chunk_size=cs)
    header = fmt.Header.parse(sealed[: fmt.HEADER_SIZE].get().tobytes())
    first = (4 << 30) // cs  # the chunk at byte offset 2^32
    tail = x[first * cs :].get()
    cpu = bytearray(len(tail) + 2 * fmt.TAG_SIZE)
    ChunkCipher(KEY, header, b"big").seal_chunks(memoryview(tail), memoryview(cpu), first, final=True)
    off = fmt.HEADER_SIZE + first * (cs + fmt.TAG_SIZE)
    assert sealed[off:].get().tobytes() == bytes(cpu)
    back = ondevice.unseal(KEY, sealed, context=b"big")
    assert bool(cp.array_equal(back, x))
    del back
    sealed[off + cs + fmt.TAG_SIZE + 3] ^= 1  # chunk first + 1, past 4 GiB
    with pytest.raises(IntegrityError):
        ondevice.unseal(KEY, sealed, context=b"big")
    dev = CudaDevice(0)
    schedule = StreamSchedule.for_stream(KEY, header, b"big", plan(2, cs))
    out = cp.full(cs + 5, 0xEE, dtype=cp.uint8)
    launch = dev.gcm(schedule, cs).open(sealed[off:], out, Batch(first, 2, 5, True), dev.stream())
    assert not launch.all_authentic()
    assert launch.verdicts.get().tolist() == [1, 0]
    host = out.get().tobytes()
    assert host[:cs] == tail[:cs].tobytes() and host[cs:] == bytes(5)


def test_finish_with_many_segments_on_device(cp: Any) -> None:
    """One 64 MiB chunk in 256-block segments (16384 of them: 64 Horner rounds per finish thread)."""
    cs = 64 << 20
    data = os.urandom(cs - 3)
    header = fmt.Header(fmt.chunk_log2_of(cs), KEY.key_id, os.urandom(32), os.urandom(7), len(data))
    dev = CudaDevice(0)
    geometry = Geometry(lanes=256, segment_blocks=256, segments=cs // 16 // 256, max_blocks=dev.sm_count * 4)
    schedule = StreamSchedule.for_stream(KEY, header, b"", geometry)
    src = cp.asarray(np.frombuffer(data, dtype=np.uint8))
    out = cp.empty(len(data) + 16, dtype=cp.uint8)
    launch = dev.gcm(schedule, cs).seal(src, out, Batch(0, 1, len(data), True), dev.stream())
    launch.check()
    cpu = bytearray(fmt.sealed_size(len(data), cs))
    seal_stream_into(KEY, header, memoryview(data), memoryview(cpu), b"")
    assert out.get().tobytes() == bytes(cpu[fmt.HEADER_SIZE :])


def test_occupancy_and_grids(cp: Any) -> None:
    dev = CudaDevice(0)
    assert dev.sm_count >= 1 and 1 <= dev.blocks_per_sm <= 8
    g = plan(4096, 64 << 10, sms=dev.sm_count, blocks_per_sm=dev.blocks_per_sm)
    assert g.grid(4096) == dev.sm_count * dev.blocks_per_sm


def test_conflicting_table_layout_variant_computes_the_same_bytes(cp: Any) -> None:
    """The timing test's positive control builds and is correct (only its timing may differ)."""
    leaky = CudaDevice(0, defines={"CCHET_TABLE_LAYOUT_CONFLICT": 1})
    data = os.urandom(5 * 4096 + 3)
    header = fmt.Header(12, KEY.key_id, os.urandom(32), os.urandom(7), len(data))
    schedule = StreamSchedule.for_stream(KEY, header, b"", plan(6, 4096))
    out = cp.empty(len(data) + 6 * 16, dtype=cp.uint8)
    launch = leaky.gcm(schedule, 4096).seal(
        cp.asarray(np.frombuffer(data, np.uint8)), out, Batch(0, 6, 3, True), leaky.stream()
    )
    launch.check()
    assert out.get().tobytes() == reference.seal_batch(schedule, data, 4096, 0, final=True)[0]
    assert loader.module(0, defines={"CCHET_TABLE_LAYOUT_CONFLICT": 1}) is not loader.module(0)


def test_work_on_the_callers_stream_is_waited_for(cp: Any) -> None:
    """Input produced by a kernel still running on the caller's own non-blocking stream is sealed only
    after it is finished (the launch joins the caller's stream)."""
    n = 256 << 20
    with cp.cuda.Stream(non_blocking=True):
        x = cp.zeros(n, dtype=cp.uint8)
        for _ in range(4):
            x += 1  # queued on the caller's stream, not finished when seal is called
        sealed = ondevice.seal(KEY, x, chunk_size=1 << 20)
        back = ondevice.unseal(KEY, sealed)
        assert bool((back == 4).all())
