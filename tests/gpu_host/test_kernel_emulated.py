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

import numpy as np
import pytest

from cchet.crypto import format as fmt
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
) -> dict[str, bytes]:
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
