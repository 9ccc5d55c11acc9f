"""The kernel's numpy reference against the CPU engine, byte for byte, and its intermediates."""

from __future__ import annotations

import os

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from cchet.crypto import format as fmt
from cchet.crypto.engine import ChunkCipher
from cchet.crypto.oneshot import new_header, seal_stream_into
from cchet.errors import IntegrityError
from cchet.gpu import aes256, gf128, reference
from cchet.gpu import schedule as sched
from cchet.gpu.geometry import Geometry, plan
from cchet.gpu.schedule import StreamSchedule
from cchet.hazmat.ghash import gf128_mul, ghash
from cchet.hazmat.keys import DataKey

KEY = DataKey.generate()
CS = 4096


def cpu_stream(header: fmt.Header, data: bytes, context: bytes) -> bytes:
    out = bytearray(fmt.sealed_size(len(data), header.chunk_size))
    seal_stream_into(KEY, header, memoryview(data), memoryview(out), context)
    return bytes(out)


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, CS - 1, CS, CS + 1, 3 * CS + 5, 5 * CS])
def test_stream_matches_cpu_engine(n: int) -> None:
    data = os.urandom(n)
    header = new_header(KEY, n, CS)
    expected = cpu_stream(header, data, b"ctx")
    assert reference.seal_stream(KEY, header, b"ctx", data) == expected
    assert reference.open_stream(KEY, expected, b"ctx") == data


@pytest.mark.parametrize(("lanes", "target"), [(1, 1), (4, 1), (4, 64), (32, 3), (256, 528)])
def test_geometry_does_not_change_bytes(lanes: int, target: int) -> None:
    data = os.urandom(2 * CS + 100)
    header = new_header(KEY, len(data), CS)
    got = reference.seal_stream(KEY, header, b"", data, lanes=lanes, target_blocks=target)
    assert got == cpu_stream(header, data, b"")


def test_unknown_length_header_matches() -> None:
    data = os.urandom(CS + 7)
    header = new_header(KEY, None, CS)
    assert reference.seal_stream(KEY, header, b"x", data) == cpu_stream(header, data, b"x")


@settings(max_examples=15, deadline=None)
@given(data=st.binary(max_size=3 * CS + 40), context=st.binary(max_size=40), lanes=st.sampled_from([1, 8, 64]))
def test_round_trip_property(data: bytes, context: bytes, lanes: int) -> None:
    header = new_header(KEY, len(data), CS)
    sealed = reference.seal_stream(KEY, header, context, data, lanes=lanes, target_blocks=7)
    assert sealed == cpu_stream(header, data, context)
    assert reference.open_stream(KEY, sealed, context, lanes=lanes) == data


def test_tampered_chunk_fails_alone_and_is_zeroed() -> None:
    data = os.urandom(4 * CS)
    header = new_header(KEY, len(data), CS)
    sealed = bytearray(cpu_stream(header, data, b""))
    sealed[fmt.HEADER_SIZE + 2 * (CS + 16) + 5] ^= 1
    geometry = plan(4, CS)
    schedule = StreamSchedule.for_stream(KEY, header, b"", geometry)
    plain, verdicts, _ = reference.open_batch(schedule, bytes(sealed[fmt.HEADER_SIZE :]), CS, 0, final=True)
    assert verdicts.tolist() == [True, True, False, True]
    assert plain[2 * CS : 3 * CS] == bytes(CS)
    assert plain[: 2 * CS] == data[: 2 * CS] and plain[3 * CS :] == data[3 * CS :]
    with pytest.raises(IntegrityError):
        reference.open_stream(KEY, bytes(sealed), b"")


@pytest.mark.parametrize("what", ["context", "last-flag", "swap"])
def test_stream_level_tampering(what: str) -> None:
    data = os.urandom(2 * CS + 3)
    header = new_header(KEY, len(data), CS)
    sealed = cpu_stream(header, data, b"ctx")
    context = b"ctx"
    if what == "context":
        context = b"cty"
    elif what == "swap":
        body = sealed[fmt.HEADER_SIZE :]
        c0, c1 = body[: CS + 16], body[CS + 16 : 2 * (CS + 16)]
        sealed = sealed[: fmt.HEADER_SIZE] + c1 + c0 + body[2 * (CS + 16) :]
    else:  # open the first two chunks as if the second were the last
        geometry = plan(2, CS)
        schedule = StreamSchedule.for_stream(KEY, header, b"ctx", geometry)
        body = sealed[fmt.HEADER_SIZE : fmt.HEADER_SIZE + 2 * (CS + 16)]
        _, verdicts, _ = reference.open_batch(schedule, body, CS, 0, final=True)
        assert verdicts.tolist() == [True, False]
        return
    with pytest.raises(IntegrityError):
        reference.open_stream(KEY, sealed, context)


def test_batches_equal_one_launch() -> None:
    data = os.urandom(5 * CS + 9)
    header = new_header(KEY, len(data), CS)
    schedule = StreamSchedule.for_stream(KEY, header, b"", plan(2, CS))
    a, _ = reference.seal_batch(schedule, data[: 2 * CS], CS, 0, final=False)
    b, _ = reference.seal_batch(schedule, data[2 * CS :], CS, 2, final=True)
    assert header.pack() + a + b == cpu_stream(header, data, b"")


def test_trace_intermediates_are_consistent() -> None:
    """The partial sums recombine to the textbook GHASH; keystream is AES of the counter blocks."""
    data = os.urandom(CS + 48)
    header = new_header(KEY, len(data), CS)
    geometry = Geometry(lanes=4, segment_blocks=8, segments=32)
    schedule = StreamSchedule.for_stream(KEY, header, b"c", geometry)
    body, trace = reference.seal_batch(schedule, data, CS, 0, final=True)
    assert trace.segments.tolist() == [32, 1] and trace.pads.tolist() == [0, 5]
    h = schedule.h
    aad = fmt.chunk_aad(header.pack(), b"c")
    for i, n in enumerate([CS, 48]):
        start = i * (CS + 16)
        ct = body[start : start + n]
        expected = ghash(gf128.to_bytes(h), aad, ct)
        assert gf128.to_bytes(trace.ghash[i]) == expected
        assert np.array_equal(np.bitwise_xor.reduce(trace.lane_sums[i], axis=1), trace.partial_sums[i])
        m = -(-n // 16)
        ecb = Cipher(algorithms.AES(fmt.stream_key(_raw(KEY), header)), modes.ECB()).encryptor()
        ks = ecb.update(gf128.to_bytes(trace.counter_blocks[i, :m]))
        assert gf128.to_bytes(trace.keystream[i, :m]) == ks
        assert trace.counter_blocks[i, 0, 3] == 2 and trace.counter_blocks[i, 0, 2] & 0xFF == i


def _raw(key: DataKey) -> bytes:
    from cchet.hazmat.keys import data_key_bytes

    return data_key_bytes(key)


def test_gf128_matches_bitwise_ghash() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2**32, size=(64, 4), dtype=np.uint64).astype(np.uint32)
    b = rng.integers(0, 2**32, size=(64, 4), dtype=np.uint64).astype(np.uint32)
    a[0] = 0xFFFFFFFF
    b[0] = 0xFFFFFFFF
    got = gf128.mul(a, b)
    for i in range(64):
        assert gf128.to_int(got[i]) == gf128_mul(gf128.to_int(a[i]), gf128.to_int(b[i]))


def test_clmul32_matches_schoolbook() -> None:
    rng = np.random.default_rng(2)
    x = rng.integers(0, 2**32, size=200, dtype=np.uint64)
    y = rng.integers(0, 2**32, size=200, dtype=np.uint64)
    x[0] = y[0] = 0xFFFFFFFF
    got = gf128.clmul32(x, y)
    for xi, yi, g in zip(x.tolist(), y.tolist(), got.tolist(), strict=True):
        want = 0
        for bit in range(32):
            if yi >> bit & 1:
                want ^= xi << bit
        assert g == want


def test_powers_and_schedule_layout() -> None:
    geometry = Geometry(lanes=8, segment_blocks=24, segments=2)
    s = StreamSchedule.build(bytes(range(32)), bytes(7), bytes(32), geometry)
    h = s.h
    assert np.array_equal(s.field(sched.H2), gf128.mul(h, h))
    assert np.array_equal(s.field(sched.HLANES), gf128.power(h, 8))
    assert np.array_equal(s.field(sched.HSEG), gf128.power(h, 24))
    assert np.array_equal(s.lane_powers[0], gf128.power(h, 7))
    assert np.array_equal(s.lane_powers[7], gf128.ONE)
    assert s.words[sched.GEOM : sched.GEOM + 2].tolist() == [8, 24]
    assert "hidden" in repr(s)
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(s)


def test_aes_against_openssl_and_fips197() -> None:
    # FIPS-197 Appendix C.3 (AES-256).
    key = bytes(range(32))
    pt = bytes.fromhex("00112233445566778899aabbccddeeff")
    ct = aes256.encrypt_blocks(aes256.expand_key(key), gf128.from_bytes(pt))
    assert gf128.to_bytes(ct).hex() == "8ea2b7ca516745bfeafc49904b496089"
    k2, blocks = os.urandom(32), os.urandom(16 * 50)
    got = gf128.to_bytes(aes256.encrypt_blocks(aes256.expand_key(k2), gf128.from_bytes(blocks)))
    assert got == Cipher(algorithms.AES(k2), modes.ECB()).encryptor().update(blocks)
    sbox = aes256.sbox()
    assert (sbox[0], sbox[1], sbox[0x53]) == (0x63, 0x7C, 0xED)
    assert sorted(sbox.tolist()) == list(range(256))


def test_geometry_plan() -> None:
    few = plan(1, 1 << 20)
    assert few.segments > 1 and few.segment_blocks % few.lanes == 0
    many = plan(4096, 1 << 20)
    assert many.segments == 1
    small = plan(1, 4096)
    assert small.segment_blocks == 256 and small.segments == 1
    with pytest.raises(ValueError):
        Geometry(lanes=3, segment_blocks=3, segments=1)


@pytest.mark.parametrize("length", ["known", "unknown"])
def test_batch_past_4_gib_matches_cpu_engine(length: str) -> None:
    """Chunks whose byte offsets lie past 2^32 (here, the last three of a 64 GiB stream: chunk indices
    near 2^24), sealed and opened as one batch without the rest of the stream: the reference's counters,
    nonces and tags equal the CPU engine's, and tampering there is caught and zeroed."""
    chunks = 1 << 24
    n = (chunks - 1) * CS + 100
    header = new_header(KEY, n if length == "known" else None, CS)
    first = chunks - 3
    assert first * CS > 1 << 32
    tail = os.urandom(2 * CS + 100)
    cpu = bytearray(len(tail) + 3 * fmt.TAG_SIZE)
    ChunkCipher(KEY, header, b"far").seal_chunks(memoryview(tail), memoryview(cpu), first, final=True)
    schedule = StreamSchedule.for_stream(KEY, header, b"far", plan(3, CS))
    body, trace = reference.seal_batch(schedule, tail, CS, first, final=True)
    assert body == bytes(cpu)
    assert (
        trace.counter_blocks[0, 0, 1] & 0xFF == first >> 24 and trace.counter_blocks[0, 0, 2] >> 8 == first & 0xFFFFFF
    )
    bad = bytearray(body)
    bad[2 * (CS + 16) + 3] ^= 1
    plain, ok, _ = reference.open_batch(schedule, bytes(bad), CS, first, final=True)
    assert ok.tolist() == [True, True, False]
    assert plain[: 2 * CS] == tail[: 2 * CS] and plain[2 * CS :] == bytes(100)
