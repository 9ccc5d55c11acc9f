"""Correctness that only real hardware can show.

* Stream order: a slow asynchronous producer on the caller's current stream (the legacy null stream, or a
  non-blocking stream made current) writes the input of ``cchet.gpu.seal`` / ``cchet.gpu.unseal`` /
  ``BounceChannel.to_host``, or hands the memory ``BounceChannel.to_device`` writes into back to CuPy's pool
  while its last kernel is still queued; the result must be right. cchet's kernels run on private
  non-blocking streams, so without the ordering against the current stream these read the input before it
  exists (or are overwritten by the caller's late kernel).
* A sealed stream longer than 4 GiB (when the GPU and host have the memory; skipped, saying why,
  otherwise): the kernels and the CPU engine open each other's output, and tampering past 4 GiB is caught
  by the kernels and by the channel.
* The kernels' output byte for byte against the CPU engine for random sizes, chunk sizes and contexts, and
  channel round trips for random configurations (hypothesis, derandomized).

Runs with the device tests (``tests/gpu``: marked ``gpu``, skipped with the reason without CuPy or a GPU).
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cchet.gpu
from cchet import seal, unseal, unseal_into
from cchet.crypto import format as fmt
from cchet.crypto.oneshot import open_header, seal_stream_into
from cchet.errors import IntegrityError
from cchet.gpu.channel import BounceChannel
from cchet.hazmat.keys import DataKey
from tests.gpu.conftest import gpu_missing
from tests.gpu.timing import SPIN_KERNEL

KEY = DataKey.generate()
BIG = 256 << 20  # the stream-order cases: large enough that a copy or kernel takes visible time
MIB = 1 << 20
BOUNDARY = 4 << 30  # byte offsets past this need more than 32 bits
PAST_4_GIB = BOUNDARY + 3 * MIB + 123

# ----------------------------------------------------------------------------------------- stream order


@cache
def _spin() -> Any:
    cp = importlib.import_module("cupy")
    return cp.RawKernel(SPIN_KERNEL, "cchet_timing_spin")


def produce(dst: Any, fill: Callable[[Any], object], seconds: float) -> None:
    """Queue on the current stream: spin ``seconds``, then ``fill(dst)``; return at once."""
    assert dst.nbytes > 0
    _spin()((1,), (1,), (np.uint64(int(seconds * 1e9)),))
    fill(dst)


def spin_seconds(operation_s: float) -> float:
    """A producer delay that comfortably outlasts the operation under test (itself timed unobstructed)."""
    return min(3.0, max(0.3, 4.0 * operation_s))


@contextmanager
def caller_stream(cp: Any, kind: str) -> Iterator[Any]:
    """Make the legacy null stream (``null``) or a new non-blocking stream (``user``) current."""
    stream = cp.cuda.Stream.null if kind == "null" else cp.cuda.Stream(non_blocking=True)
    with stream:
        yield stream


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    importlib.import_module("cupy").cuda.runtime.deviceSynchronize()
    return out, time.perf_counter() - start


@pytest.fixture
def big(cp: Any) -> tuple[Any, bytes]:
    """BIG random bytes on the device, and the same bytes on the host (written and synchronised)."""
    src = cp.random.randint(0, 256, BIG, dtype=cp.uint8)
    host = src.get().tobytes()
    cp.cuda.runtime.deviceSynchronize()
    return src, host


@pytest.mark.parametrize("kind", ["null", "user"])
def test_gpu_seal_waits_for_the_callers_producer(cp: Any, big: tuple[Any, bytes], kind: str) -> None:
    src, expected = big
    with caller_stream(cp, kind) as stream:
        _, op = timed(lambda: cchet.gpu.seal(KEY, src, context=b"order"))
        x = cp.zeros(BIG, dtype=cp.uint8)
        stream.synchronize()
        produce(x, lambda dst: cp.copyto(dst, src), spin_seconds(op))
        sealed = cchet.gpu.seal(KEY, x, context=b"order")
        got = unseal(KEY, sealed.get(), context=b"order")
    assert got == expected, "cchet.gpu.seal read its input before the caller's stream had produced it"


@pytest.mark.parametrize("kind", ["null", "user"])
def test_gpu_unseal_waits_for_the_callers_producer(cp: Any, big: tuple[Any, bytes], kind: str) -> None:
    _, expected = big
    blob = cp.asarray(np.frombuffer(seal(KEY, expected, context=b"order", chunk_size=MIB), dtype=np.uint8))
    cp.cuda.runtime.deviceSynchronize()  # blob was written on the null stream, which a user stream does not follow
    with caller_stream(cp, kind) as stream:
        _, op = timed(lambda: cchet.gpu.unseal(KEY, blob, context=b"order"))
        y = cp.zeros_like(blob)
        stream.synchronize()
        produce(y, lambda dst: cp.copyto(dst, blob), spin_seconds(op))
        out = cchet.gpu.unseal(KEY, y, context=b"order")
        got = out.get().tobytes()
    assert got == expected, "cchet.gpu.unseal read its input before the caller's stream had produced it"


@pytest.mark.parametrize("kind", ["null", "user"])
def test_channel_to_host_waits_for_the_callers_producer(cp: Any, big: tuple[Any, bytes], kind: str) -> None:
    src, expected = big
    with caller_stream(cp, kind) as stream, BounceChannel(0, chunk_size=MIB) as ch:
        _, op = timed(lambda: ch.to_host(src))
        d = cp.zeros(BIG, dtype=cp.uint8)
        stream.synchronize()
        produce(d, lambda dst: cp.copyto(dst, src), spin_seconds(op))
        back = ch.to_host(d)
    assert back.tobytes() == expected, "BounceChannel.to_host read its input before the caller's stream produced it"


@contextmanager
def private_pool(cp: Any) -> Iterator[Any]:
    """A fresh CuPy memory pool as the allocator, so that which block is reused is predictable."""
    pool = cp.cuda.MemoryPool()
    getter = getattr(cp.cuda, "get_allocator", None) or getattr(cp.cuda.memory, "get_allocator", None)
    previous = getter() if getter is not None else cp.get_default_memory_pool().malloc
    cp.cuda.set_allocator(pool.malloc)
    try:
        yield pool
    finally:
        cp.cuda.runtime.deviceSynchronize()
        cp.cuda.set_allocator(previous)


@pytest.mark.parametrize("kind", ["null", "user"])
def test_channel_to_device_presealed_after_the_callers_pending_kernel(
    cp: Any, big: tuple[Any, bytes], kind: str
) -> None:
    """The caller frees a buffer whose last kernel is still queued on its stream; CuPy's pool hands that
    block to the next allocation on the same stream, which is to_device's destination. The channel must not
    write it before the caller's kernel has run, or the caller's late kernel overwrites the result."""
    _, expected = big
    blob = seal(KEY, expected, context=b"rest", chunk_size=MIB)
    with private_pool(cp), caller_stream(cp, kind) as stream, BounceChannel(0, chunk_size=MIB) as ch:
        warm, op = timed(lambda: ch.to_device(blob, key=KEY, context=b"rest"))
        del warm  # its block goes back to the pool: the next BIG allocation on this stream reuses it
        stream.synchronize()
        tmp = cp.empty(BIG, dtype=cp.uint8)
        freed_at = tmp.data.ptr
        produce(tmp, lambda dst: dst.fill(0xA5), spin_seconds(op))
        del tmp  # back to the pool while the fill is still queued
        out = ch.to_device(blob, key=KEY, context=b"rest")
        reused = out.data.ptr == freed_at
        got = out.get().tobytes()
    assert got == expected, "BounceChannel.to_device wrote its destination before the caller's pending kernel"
    if not reused:
        pytest.skip("CuPy's pool did not hand the freed block to to_device: this run did not exercise the hazard")


# ---------------------------------------------------------------------------------- random comparisons


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    n=st.one_of(st.integers(0, 64), st.integers(0, 3 * MIB)),
    log2=st.integers(fmt.MIN_CHUNK_LOG2, 20),
    context=st.binary(max_size=48),
    seed=st.integers(0, 2**32 - 1),
)
def test_kernels_equal_cpu_engine_byte_for_byte(cp: Any, n: int, log2: int, context: bytes, seed: int) -> None:
    cs = 1 << log2
    data = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    x = cp.asarray(np.frombuffer(data, dtype=np.uint8)) if n else cp.empty(0, dtype=cp.uint8)
    sealed = cchet.gpu.seal(KEY, x, context=context, chunk_size=cs).get().tobytes()
    # The CPU engine under the kernel's own header must give the same bytes.
    header = open_header(KEY, sealed[: fmt.HEADER_SIZE])
    cpu = bytearray(fmt.sealed_size(n, cs))
    seal_stream_into(KEY, header, memoryview(data), memoryview(cpu), context)
    assert sealed == bytes(cpu)
    assert unseal(KEY, sealed, context=context) == data
    fresh = seal(KEY, data, context=context, chunk_size=cs)
    back = cchet.gpu.unseal(KEY, cp.asarray(np.frombuffer(fresh, dtype=np.uint8)), context=context)
    assert back.get().tobytes() == data


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    n=st.integers(0, 2 * MIB),
    log2=st.integers(fmt.MIN_CHUNK_LOG2, 18),
    slots=st.integers(2, 5),
    slot_chunks=st.integers(1, 4),
    streams=st.integers(1, 3),
    threads=st.integers(1, 4),
    dtype=st.sampled_from(["uint8", "float32", "int64"]),
    context=st.binary(max_size=16),
    seed=st.integers(0, 2**32 - 1),
)
def test_channel_random_configurations(
    cp: Any,
    n: int,
    log2: int,
    slots: int,
    slot_chunks: int,
    streams: int,
    threads: int,
    dtype: str,
    context: bytes,
    seed: int,
) -> None:
    item = np.dtype(dtype).itemsize
    a = np.random.default_rng(seed).integers(0, 256, n - n % item, dtype=np.uint8).view(dtype)
    cs = 1 << log2
    with BounceChannel(0, slots=slots, slot_chunks=slot_chunks, chunk_size=cs, streams=streams, threads=threads) as ch:
        d = ch.to_device(a)  # compared as bytes: random floats include NaNs
        assert d.dtype == a.dtype and d.shape == a.shape and d.get().tobytes() == a.tobytes()
        assert ch.to_host(d).tobytes() == a.tobytes()
        blob = seal(KEY, a, context=context, chunk_size=cs)
        pre = ch.to_device(blob, key=KEY, context=context)
        assert pre.get().tobytes() == a.tobytes()
        assert unseal(KEY, ch.to_host_sealed(pre, KEY, context=context), context=context) == a.tobytes()


# ------------------------------------------------------------------------------------------ past 4 GiB


def _host_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


@pytest.fixture(scope="module")
def past_4_gib() -> Iterator[dict[str, Any]]:
    """A random stream of PAST_4_GIB bytes on the device, sealed by the kernels in 1 MiB chunks, and its
    host copies; skipped, saying why, without the GPU or the memory."""
    reason = gpu_missing()
    if reason is not None:
        pytest.skip(reason)
    cp = importlib.import_module("cupy")
    n = PAST_4_GIB
    free, _ = cp.cuda.runtime.memGetInfo()
    if free < 4.3 * n:
        pytest.skip(f"needs {4.3 * n / 2**30:.1f} GiB of free GPU memory for a >4 GiB stream, has {free / 2**30:.1f}")
    if _host_available() < 4.5 * n:
        pytest.skip(f"needs {4.5 * n / 2**30:.1f} GiB of available host memory, has {_host_available() / 2**30:.1f}")
    arr = cp.empty(n, dtype=cp.uint8)
    for off in range(0, n, 1 << 30):
        part = arr[off : off + (1 << 30)]
        part[...] = cp.random.randint(0, 256, part.size, dtype=cp.uint8)
    sealed = cchet.gpu.seal(KEY, arr, context=b"big", chunk_size=MIB)
    yield {"cp": cp, "arr": arr, "sealed": sealed, "host_plain": arr.get(), "host_sealed": sealed.get()}
    cp.get_default_memory_pool().free_all_blocks()


def test_past_4_gib_kernels_and_cpu_engine_open_each_other(past_4_gib: dict[str, Any]) -> None:
    cp, arr = past_4_gib["cp"], past_4_gib["arr"]
    n = PAST_4_GIB
    assert int(past_4_gib["sealed"].nbytes) == fmt.sealed_size(n, MIB) > BOUNDARY
    opened = np.empty(n, dtype=np.uint8)
    assert unseal_into(KEY, past_4_gib["host_sealed"], opened, context=b"big") == n
    assert np.array_equal(opened, past_4_gib["host_plain"]), "the CPU engine disagrees with the kernels' seal"
    del opened
    back = cchet.gpu.unseal(KEY, past_4_gib["sealed"], context=b"big")
    assert bool(cp.array_equal(back, arr))
    del back
    cpu = np.empty(fmt.sealed_size(n, MIB), dtype=np.uint8)
    header = open_header(KEY, past_4_gib["host_sealed"][: fmt.HEADER_SIZE].tobytes())
    seal_stream_into(KEY, header, memoryview(past_4_gib["host_plain"]), memoryview(cpu), b"big")
    assert np.array_equal(cpu, past_4_gib["host_sealed"]), "the kernels' bytes past 4 GiB differ from the CPU engine"
    dev_cpu = cp.asarray(cpu)
    back = cchet.gpu.unseal(KEY, dev_cpu, context=b"big")
    assert bool(cp.array_equal(back, arr))


def test_past_4_gib_tampering_is_caught(past_4_gib: dict[str, Any]) -> None:
    sealed, host_sealed = past_4_gib["sealed"], past_4_gib["host_sealed"]
    beyond = fmt.HEADER_SIZE + BOUNDARY + 1000  # a ciphertext byte past 4 GiB
    for pos in (beyond, int(sealed.nbytes) - 1):  # ... and the final tag's last byte
        assert pos > BOUNDARY
        view = sealed[pos : pos + 1]
        view ^= 1
        try:
            with pytest.raises(IntegrityError):
                cchet.gpu.unseal(KEY, sealed, context=b"big")
        finally:
            view ^= 1
    with BounceChannel(0, chunk_size=MIB) as ch:
        out = ch.to_device(host_sealed, key=KEY, context=b"big")
        assert bool(past_4_gib["cp"].array_equal(out, past_4_gib["arr"]))
        del out
        host_sealed[beyond] ^= 1
        try:
            with pytest.raises(IntegrityError):
                ch.to_device(host_sealed, key=KEY, context=b"big")
        finally:
            host_sealed[beyond] ^= 1
