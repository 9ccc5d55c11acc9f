"""Properties of the engine: round trips, parallel equals serial, every backend equals every other."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import cchet
from cchet.crypto import engine
from cchet.crypto import format as fmt
from cchet.crypto.oneshot import new_header, seal_stream_into
from cchet.hazmat import aead

KEY = cchet.DataKey.generate()
sizes = st.integers(min_value=0, max_value=300_000)
log2s = st.sampled_from([12, 13, 14, 16])


def _seal_with(header: fmt.Header, data: bytes, threads: int, backend: str) -> bytes:
    out = bytearray(fmt.sealed_size(len(data), header.chunk_size))
    seal_stream_into(KEY, header, memoryview(data), memoryview(out), b"c", threads=threads, backend=backend)
    return bytes(out)


@settings(max_examples=30, deadline=None)
@given(n=sizes, log2=log2s, seed=st.integers(0, 2**32 - 1))
def test_round_trip(n: int, log2: int, seed: int) -> None:
    data = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8)
    blob = cchet.seal(KEY, data, context=b"c", chunk_size=1 << log2)
    assert len(blob) == cchet.sealed_size(n, 1 << log2)
    assert cchet.unseal(KEY, blob, context=b"c") == data.tobytes()
    out = np.empty(n, dtype=np.uint8)
    assert cchet.unseal_into(KEY, memoryview(blob), out, context=b"c") == n
    assert np.array_equal(out, data)


@settings(max_examples=25, deadline=None)
@given(n=sizes, log2=log2s, threads=st.integers(2, 8))
def test_parallel_equals_serial_and_backends_agree(n: int, log2: int, threads: int) -> None:
    data = bytes(range(256)) * (n // 256) + bytes(n % 256)
    header = new_header(KEY, n, 1 << log2)
    old = engine.MIN_BYTES_PER_THREAD
    engine.MIN_BYTES_PER_THREAD = 1  # force real splitting even for small inputs
    try:
        serial = _seal_with(header, data, 1, "openssl")
        assert _seal_with(header, data, threads, "openssl") == serial
        assert _seal_with(header, data, threads, "pycryptodome") == serial
        for backend in aead.BACKENDS:
            assert cchet.unseal(KEY, serial, context=b"c", threads=threads, backend=backend) == data
    finally:
        engine.MIN_BYTES_PER_THREAD = old


@settings(max_examples=20, deadline=None)
@given(
    pieces=st.lists(st.binary(max_size=9000), max_size=12),
    log2=st.sampled_from([12, 13]),
    known=st.booleans(),
    read_size=st.integers(1, 20_000),
)
def test_streaming_writer_and_reader(pieces: list[bytes], log2: int, known: bool, read_size: int) -> None:
    data = b"".join(pieces)
    sink = io.BytesIO()
    with cchet.SealWriter(
        KEY, sink, chunk_size=1 << log2, length=len(data) if known else None, threads=2
    ) as w:
        for p in pieces:
            assert w.write(p) == len(p)
    blob = sink.getvalue()
    assert len(blob) == cchet.sealed_size(len(data), 1 << log2), "the streaming writer is canonical"
    assert cchet.unseal(KEY, blob) == data
    reader = cchet.UnsealReader(KEY, io.BytesIO(blob), threads=2)
    got = bytearray()
    while chunk := reader.read(read_size):
        got += chunk
    assert got == data
