"""The CUDA kernels' own source, run on the CPU under a thin emulation of the CUDA built-ins
(``emulator/cuda_shim.hpp``: std::threads per block, barriers, warp shuffles), against the numpy reference.

No GPU is needed or used. This checks the kernels' logic, indexing and intermediates (partial GHASH sums,
E_K(J0), tags, verdicts, zeroing) byte for byte; timing, occupancy and the real compiler are the device
tests' job (tests/gpu/). Skips, saying why, when g++ is absent.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cchet.crypto import format as fmt
from cchet.crypto.engine import ChunkCipher
from cchet.crypto.oneshot import new_header, seal_stream_into
from cchet.gpu import reference
from cchet.gpu.geometry import Geometry, plan
from cchet.gpu.schedule import StreamSchedule
from cchet.hazmat.keys import DataKey
from tests.gpu_host.emulation import build

KEY = DataKey.generate()


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build("run_kernels.cpp", tmp_path_factory.mktemp("emu") / "run_kernels")


@pytest.fixture(scope="module")
def conflict_runner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The kernels built with the deliberately bank-conflicting T-table (the timing test's positive control)."""
    out = tmp_path_factory.mktemp("emu-conflict") / "run_kernels"
    return build("run_kernels.cpp", out, "-DCCHET_TABLE_LAYOUT_CONFLICT=1")


def run(
    exe: Path,
    work: Path,
    mode: str,
    schedule: StreamSchedule,
    src: bytes,
    dst_len: int,
    *,
    first_index: int,
    n_chunks: int,
    last_len: int,
    final: bool,
    chunk_size: int,
    grids: tuple[int, int] | None = None,
) -> dict[str, bytes]:
    """Run one launch; ``grids`` = (segments, finish) thread blocks (default: one per item / chunk)."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "sched.bin").write_bytes(schedule.words.astype("<u4").tobytes())
    (work / "src.bin").write_bytes(src)
    (work / "dst.bin").write_bytes(b"\xee" * dst_len)
    last_index = first_index + n_chunks - 1 if final else -1
    params = [
        first_index,
        last_index,
        n_chunks,
        last_len,
        chunk_size.bit_length() - 1,
        schedule.geometry.segments,
        *(grids or ()),
    ]
    (work / "params.txt").write_text(" ".join(map(str, params)))
    subprocess.run([str(exe), mode, str(work)], check=True, timeout=300)
    out = {n: (work / f"{n}.bin").read_bytes() for n in ("dst", "partial", "ek_j0", "verdicts", "status")}
    out["banks"] = (work / "banks.txt").read_bytes()
    return out


def bank_check(out: dict[str, bytes]) -> tuple[int, int]:
    reads, violations = map(int, out["banks"].split())
    return reads, violations


def words(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype="<u4")


@pytest.mark.parametrize(
    ("n", "cs", "target"),
    [
        (0, 4096, 528),  # the empty stream: one empty chunk
        (100, 4096, 528),  # one partial chunk
        (3 * 4096 + 33, 4096, 528),  # full chunks and a partial last one
        (2 * 8192, 8192, 4),  # several thread blocks per chunk (segments > 1)
        (2 * 8192 - 9, 8192, 4),  # several blocks per chunk, the last chunk short with a 7-byte tail
        (8, 4096, 528),  # tails of 8 and 15 bytes
        (4096 + 15, 4096, 528),
    ],
)
def test_emulated_kernels_match_reference_and_cpu_engine(
    runner: Path, tmp_path: Path, n: int, cs: int, target: int
) -> None:
    data = os.urandom(n)
    header = new_header(KEY, n, cs)
    chunks = fmt.chunk_count(n, cs)
    geometry = plan(chunks, cs, target_blocks=target)
    schedule = StreamSchedule.for_stream(KEY, header, b"ctx", geometry)
    last_len = n - (chunks - 1) * cs
    sealed_len = n + 16 * chunks

    expected_body, trace = reference.seal_batch(schedule, data, cs, 0, final=True)
    out = run(
        runner,
        tmp_path / "seal",
        "seal",
        schedule,
        data,
        sealed_len,
        first_index=0,
        n_chunks=chunks,
        last_len=last_len,
        final=True,
        chunk_size=cs,
    )
    assert out["dst"] == expected_body
    cpu = bytearray(fmt.sealed_size(n, cs))
    seal_stream_into(KEY, header, memoryview(data), memoryview(cpu), b"ctx")
    assert bytes(cpu[fmt.HEADER_SIZE :]) == out["dst"]
    assert words(out["status"]).tolist() == [0]
    # Intermediates: E_K(J0) and each running segment's partial sum.
    assert np.array_equal(words(out["ek_j0"]).reshape(chunks, 4), trace.ek_j0)
    partial = words(out["partial"]).reshape(chunks, geometry.segments, 4)
    for c in range(chunks):
        segs = int(trace.segments[c])
        assert np.array_equal(partial[c, :segs], trace.partial_sums[c, :segs])

    reads, violations = bank_check(out)
    assert reads >= 224 * (-(-n // 16) + chunks) and violations == 0  # every AES lookup in its lane's bank
    opened = run(
        runner,
        tmp_path / "open",
        "open",
        schedule,
        expected_body,
        n,
        first_index=0,
        n_chunks=chunks,
        last_len=last_len,
        final=True,
        chunk_size=cs,
    )
    assert opened["dst"] == data
    assert words(opened["verdicts"]).tolist() == [1] * chunks


def test_emulated_open_zeroes_only_the_failed_chunk(runner: Path, tmp_path: Path) -> None:
    cs, chunks = 4096, 3
    data = os.urandom(cs * chunks - 5)
    header = new_header(KEY, len(data), cs)
    schedule = StreamSchedule.for_stream(KEY, header, b"", plan(chunks, cs))
    body = bytearray(reference.seal_batch(schedule, data, cs, 0, final=True)[0])
    body[(cs + 16) + 100] ^= 0x80  # chunk 1's ciphertext
    out = run(
        runner,
        tmp_path,
        "open",
        schedule,
        bytes(body),
        len(data),
        first_index=0,
        n_chunks=chunks,
        last_len=cs - 5,
        final=True,
        chunk_size=cs,
    )
    assert words(out["verdicts"]).tolist() == [1, 0, 1]
    assert out["dst"][cs : 2 * cs] == bytes(cs)
    assert out["dst"][:cs] == data[:cs] and out["dst"][2 * cs :] == data[2 * cs :]


def test_emulated_batch_in_the_middle_of_a_stream(runner: Path, tmp_path: Path) -> None:
    """Chunks 5..6 of a longer stream (not final): nonces carry the stream index, last = 0."""
    cs = 4096
    data = os.urandom(10 * cs)
    header = new_header(KEY, len(data), cs)
    schedule = StreamSchedule.for_stream(KEY, header, b"m", plan(2, cs))
    cpu = bytearray(fmt.sealed_size(len(data), cs))
    seal_stream_into(KEY, header, memoryview(data), memoryview(cpu), b"m")
    out = run(
        runner,
        tmp_path,
        "seal",
        schedule,
        data[5 * cs : 7 * cs],
        2 * (cs + 16),
        first_index=5,
        n_chunks=2,
        last_len=cs,
        final=False,
        chunk_size=cs,
    )
    start = fmt.HEADER_SIZE + 5 * (cs + 16)
    assert out["dst"] == bytes(cpu[start : start + 2 * (cs + 16)])


def test_emulated_kernel_rejects_a_foreign_geometry(runner: Path, tmp_path: Path) -> None:
    cs = 4096
    schedule = StreamSchedule.build(bytes(32), bytes(7), bytes(32), Geometry(lanes=128, segment_blocks=256, segments=1))
    out = run(
        runner,
        tmp_path,
        "seal",
        schedule,
        bytes(cs),
        cs + 16,
        first_index=0,
        n_chunks=1,
        last_len=cs,
        final=True,
        chunk_size=cs,
    )
    assert words(out["status"]).tolist() == [1]


def seal_and_open(
    runner: Path,
    work: Path,
    schedule: StreamSchedule,
    data: bytes,
    cs: int,
    *,
    first_index: int = 0,
    final: bool = True,
    grids: tuple[int, int] | None = None,
) -> tuple[dict[str, bytes], dict[str, bytes], bytes]:
    """Seal ``data`` as chunks ``first_index..`` and open the result again; returns both runs' outputs and
    the reference's sealed bytes."""
    chunks = fmt.chunk_count(len(data), cs)
    last_len = len(data) - (chunks - 1) * cs
    expected, _ = reference.seal_batch(schedule, data, cs, first_index, final=final)
    kw: dict[str, Any] = {
        "first_index": first_index,
        "n_chunks": chunks,
        "last_len": last_len,
        "final": final,
        "chunk_size": cs,
    }
    sealed = run(runner, work / "seal", "seal", schedule, data, len(data) + 16 * chunks, grids=grids, **kw)
    opened = run(runner, work / "open", "open", schedule, expected, len(data), grids=grids, **kw)
    return sealed, opened, expected


@pytest.fixture(scope="module")
def small_runner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same kernels on 64-thread blocks (-DCCHET_LANES=64), so chunks with hundreds of segments stay
    cheap to emulate; the host only ever launches 256."""
    return build("run_kernels.cpp", tmp_path_factory.mktemp("emu-64") / "run_kernels", "-DCCHET_LANES=64")


@pytest.mark.parametrize(
    ("m", "cs"),
    [
        (257 * 64 + 1, 512 << 10),  # 258 segments: five Horner rounds per thread, 62 zero sums in front
        (600 * 64 - 3, 1 << 20),  # 600 segments: ten rounds, no zeros in front
        (64 * 64, 1 << 20),  # 64 segments: one round, every thread one sum
    ],
)
def test_finish_combines_many_segments_in_parallel(small_runner: Path, tmp_path: Path, m: int, cs: int) -> None:
    """Chunks with more segments than the finish kernel has threads (the parallel Horner rounds and the
    tree), a grid smaller than the work, and a short last block: byte for byte the reference and the CPU
    engine."""
    n = 16 * m - 5
    data = os.urandom(n)
    header = new_header(KEY, n, cs)
    geometry = Geometry(lanes=64, segment_blocks=64, segments=cs // 16 // 64, max_blocks=16)
    schedule = StreamSchedule.for_stream(KEY, header, b"many", geometry)
    sealed, opened, expected = seal_and_open(small_runner, tmp_path, schedule, data, cs, grids=(16, 1))
    assert sealed["dst"] == expected
    cpu = bytearray(fmt.sealed_size(n, cs))
    seal_stream_into(KEY, header, memoryview(data), memoryview(cpu), b"many")
    assert bytes(cpu[fmt.HEADER_SIZE :]) == sealed["dst"]
    assert opened["dst"] == data and words(opened["verdicts"]).tolist() == [1]
    assert bank_check(sealed)[1] == 0


def test_blocks_loop_over_work_items(runner: Path, tmp_path: Path) -> None:
    """Grids smaller than the work (the device's resident limit): every block walks several items."""
    cs = 8192
    data = os.urandom(5 * cs - 9)
    header = new_header(KEY, len(data), cs)
    geometry = Geometry(lanes=256, segment_blocks=256, segments=2, max_blocks=3)
    assert geometry.grid(5) == 3 and geometry.finish_grid(5) == 3
    schedule = StreamSchedule.for_stream(KEY, header, b"", geometry)
    sealed, opened, expected = seal_and_open(runner, tmp_path, schedule, data, cs, grids=(3, 2))
    assert sealed["dst"] == expected and opened["dst"] == data
    assert words(opened["verdicts"]).tolist() == [1] * 5
    bad = bytearray(expected)
    bad[3 * (cs + 16) + 10] ^= 4  # chunk 3
    out = run(
        runner,
        tmp_path / "bad",
        "open",
        schedule,
        bytes(bad),
        len(data),
        first_index=0,
        n_chunks=5,
        last_len=cs - 9,
        final=True,
        chunk_size=cs,
        grids=(3, 2),
    )
    assert words(out["verdicts"]).tolist() == [1, 1, 1, 0, 1]
    assert out["dst"][3 * cs : 4 * cs] == bytes(cs) and out["dst"][: 3 * cs] == data[: 3 * cs]


def test_offsets_past_4_gib(runner: Path, tmp_path: Path) -> None:
    """The last chunks of a 64 GiB stream (byte offsets near 2^36, chunk indices near 2^24): CTR counters,
    nonces and tags equal the CPU engine's, and a tampered chunk there is caught and zeroed. Only the
    batch itself is allocated."""
    cs = 4096
    chunks = 1 << 24  # the most a stream of 4 KiB chunks holds (MAX_STREAM_BYTES)
    n = (chunks - 1) * cs + 100
    header = new_header(KEY, n, cs)
    first = chunks - 3
    assert first * cs > 1 << 32
    tail = os.urandom(2 * cs + 100)
    cpu = bytearray(len(tail) + 3 * 16)
    ChunkCipher(KEY, header, b"far").seal_chunks(memoryview(tail), memoryview(cpu), first, final=True)
    schedule = StreamSchedule.for_stream(KEY, header, b"far", plan(3, cs))
    sealed, opened, expected = seal_and_open(runner, tmp_path, schedule, tail, cs, first_index=first)
    assert expected == bytes(cpu) and sealed["dst"] == bytes(cpu)
    assert opened["dst"] == tail
    bad = bytearray(cpu)
    bad[cs + 16 + 5] ^= 1
    out = run(
        runner,
        tmp_path / "bad",
        "open",
        schedule,
        bytes(bad),
        len(tail),
        first_index=first,
        n_chunks=3,
        last_len=100,
        final=True,
        chunk_size=cs,
    )
    assert words(out["verdicts"]).tolist() == [1, 0, 1]
    assert out["dst"][cs : 2 * cs] == bytes(cs) and out["dst"][:cs] == tail[:cs]


def test_conflicting_table_layout_fails_the_bank_check(runner: Path, conflict_runner: Path, tmp_path: Path) -> None:
    """-DCCHET_TABLE_LAYOUT_CONFLICT=1 computes the same bytes but reads outside the lane's bank: the
    emulator's side-channel check catches it (the option does what it says), the default build passes."""
    cs = 4096
    data = os.urandom(2 * cs + 50)
    header = new_header(KEY, len(data), cs)
    schedule = StreamSchedule.for_stream(KEY, header, b"", plan(3, cs))
    leaky, leaky_open, expected = seal_and_open(conflict_runner, tmp_path / "leaky", schedule, data, cs)
    assert leaky["dst"] == expected and leaky_open["dst"] == data
    reads, violations = bank_check(leaky)
    assert reads > 0 and violations > reads // 2  # nearly every lookup leaves the lane's bank
    safe, _, _ = seal_and_open(runner, tmp_path / "safe", schedule, data, cs)
    assert bank_check(safe)[1] == 0


def test_emulated_kernel_rejects_segments_that_do_not_fit_the_launch(runner: Path, tmp_path: Path) -> None:
    """A schedule whose segments are smaller than the launch's layout assumes (two segments of a chunk, one
    slot for partial sums): refused with the status bit, and the finish kernel reads nothing out of bounds."""
    cs = 8192
    schedule = StreamSchedule.build(bytes(32), bytes(7), bytes(32), Geometry(lanes=256, segment_blocks=256, segments=1))
    out = run(
        runner,
        tmp_path,
        "seal",
        schedule,
        bytes(cs),
        cs + 16,
        first_index=0,
        n_chunks=1,
        last_len=cs,
        final=True,
        chunk_size=cs,
    )
    assert words(out["status"]).tolist() == [1]
