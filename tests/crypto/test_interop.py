"""cchet and an independent implementation of format v1 read each other's streams, byte for byte."""

from __future__ import annotations

import io
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cchet
from cchet.crypto import format as fmt
from cchet.crypto.oneshot import seal_stream_into
from cchet.hazmat import aead, data_key_bytes, data_key_from_bytes
from tests.crypto.independent_v1 import open_v1, seal_v1

KEY = data_key_from_bytes(bytes(range(32)), bytes(range(100, 116)))
RAW = data_key_bytes(KEY)
SALT = bytes(range(200, 232))
PREFIX = bytes.fromhex("01020304050607")


def _cchet_seal(data: bytes, *, chunk_log2: int, context: bytes, backend: str, threads: int = 2) -> bytes:
    header = fmt.Header(
        chunk_log2=chunk_log2, key_id=KEY.key_id, salt=SALT, nonce_prefix=PREFIX, plaintext_length=len(data)
    )
    out = bytearray(fmt.sealed_size(len(data), 1 << chunk_log2))
    seal_stream_into(
        KEY, header, memoryview(data), memoryview(out), context, threads=threads, backend=backend
    )
    return bytes(out)


@pytest.mark.parametrize("backend", sorted(aead.BACKENDS))
@pytest.mark.parametrize("n", [0, 1, 4095, 4096, 4097, 3 * 4096 + 5, 70_000])
def test_same_bytes_as_the_independent_writer(backend: str, n: int) -> None:
    data = os.urandom(n)
    theirs = seal_v1(RAW, KEY.key_id, data, context=b"ctx", chunk_log2=12, salt=SALT, nonce_prefix=PREFIX)
    ours = _cchet_seal(data, chunk_log2=12, context=b"ctx", backend=backend)
    assert ours == theirs
    assert cchet.unseal(KEY, theirs, context=b"ctx", backend=backend) == data


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=40_000), log2=st.sampled_from([12, 13, 16]), context=st.binary(max_size=40))
def test_each_reads_the_other(data: bytes, log2: int, context: bytes) -> None:
    sealed = cchet.seal(KEY, data, context=context, chunk_size=1 << log2)
    assert open_v1(RAW, KEY.key_id, sealed, context=context) == data
    theirs = seal_v1(RAW, KEY.key_id, data, context=context, chunk_log2=log2, salt=SALT, nonce_prefix=PREFIX)
    assert cchet.unseal(KEY, theirs, context=context) == data


@pytest.mark.parametrize("n", [0, 5, 4096, 4096 * 3, 4096 * 3 + 1])
def test_unknown_length_streams_interoperate(n: int) -> None:
    data = os.urandom(n)
    sink = io.BytesIO()
    with cchet.SealWriter(KEY, sink, chunk_size=4096) as w:
        w.write(data)
    assert sink.getvalue()[64:72] == b"\xff" * 8
    assert open_v1(RAW, KEY.key_id, sink.getvalue()) == data
    theirs = seal_v1(RAW, KEY.key_id, data, chunk_log2=12, salt=SALT, nonce_prefix=PREFIX, length_known=False)
    assert cchet.unseal(KEY, theirs) == data
    assert cchet.UnsealReader(KEY, io.BytesIO(theirs)).read() == data


def test_stream_key_is_rfc5869_hkdf() -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    header = fmt.Header(chunk_log2=12, key_id=KEY.key_id, salt=SALT, nonce_prefix=PREFIX, plaintext_length=0)
    info = b"cchet/v1/stream\x01\x01" + KEY.key_id
    expected = HKDF(algorithm=hashes.SHA256(), length=32, salt=SALT, info=info).derive(RAW)
    assert fmt.stream_key(RAW, header) == expected
