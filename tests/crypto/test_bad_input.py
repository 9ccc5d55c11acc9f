"""Caller mistakes get clear errors that name the problem; malformed streams name the field."""

from __future__ import annotations

import io

import numpy as np
import pytest

import cchet
from cchet import SealedFormatError
from cchet.crypto import format as fmt

KEY = cchet.DataKey.generate()


def test_wrong_types_name_the_argument() -> None:
    with pytest.raises(TypeError, match="encode"):
        cchet.seal(KEY, "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bytes-like"):
        cchet.seal(KEY, 12345)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="DataKey"):
        cchet.seal(b"\x00" * 32, b"data")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="context"):
        cchet.seal(KEY, b"data", context="ctx")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="writable"):
        cchet.seal_into(KEY, b"data", bytes(200))
    with pytest.raises(TypeError, match="threads"):
        cchet.seal(KEY, b"data", threads="2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threads"):
        cchet.seal(KEY, b"data", threads=0)


def test_non_contiguous_arrays_are_refused() -> None:
    arr = np.arange(100, dtype=np.uint8)[::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        cchet.seal(KEY, arr)


def test_any_buffer_type_is_accepted() -> None:
    data = np.arange(10_000, dtype=np.uint32)
    blob = cchet.seal(KEY, data)
    assert cchet.unseal(KEY, blob) == data.tobytes()
    out = bytearray(data.nbytes)
    assert cchet.unseal_into(KEY, bytearray(blob), memoryview(out)) == data.nbytes
    assert cchet.unseal(KEY, memoryview(blob)) == data.tobytes()


def test_destination_too_small() -> None:
    with pytest.raises(ValueError, match=r"needs \d+.*sealed_size"):
        cchet.seal_into(KEY, b"x" * 100, bytearray(100))
    blob = cchet.seal(KEY, b"x" * 100)
    with pytest.raises(ValueError, match="plaintext is 100 bytes"):
        cchet.unseal_into(KEY, blob, bytearray(99))


@pytest.mark.parametrize("size", [0, 1000, 4095, 3 << 26, 1 << 27, 6000, -4096])
def test_chunk_size_out_of_range(size: int) -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        cchet.seal(KEY, b"x", chunk_size=size)
    with pytest.raises(ValueError, match="chunk_size"):
        cchet.sealed_size(10, chunk_size=size)


def test_sealed_size_is_exact_and_checks_its_input() -> None:
    assert cchet.sealed_size(0) == 72 + 16
    assert cchet.sealed_size(1 << 20) == 72 + (1 << 20) + 16
    assert cchet.sealed_size((1 << 20) + 1) == 72 + (1 << 20) + 1 + 32
    with pytest.raises(ValueError, match=">= 0"):
        cchet.sealed_size(-1)
    with pytest.raises(TypeError):
        cchet.sealed_size(1.5)  # type: ignore[arg-type]


def test_truncated_header() -> None:
    for n in (0, 1, 71):
        with pytest.raises(SealedFormatError, match="header") as info:
            cchet.unseal(KEY, bytes(n))
        assert info.value.field == "header"
    with pytest.raises(SealedFormatError, match="header"):
        cchet.UnsealReader(KEY, io.BytesIO(b"CCH1"))


@pytest.mark.parametrize(
    ("offset", "value", "field", "hint"),
    [
        (0, b"XXXX", "magic", "not a cchet sealed stream"),
        (4, b"\x02", "version", "unsupported version 2"),
        (5, b"\x07", "suite", "unknown suite 7"),
        (6, b"\x0b", "chunk_log2", "11 is outside 12..26"),
        (6, b"\x1b", "chunk_log2", "27 is outside 12..26"),
        (7, b"\x01", "flags", "must be 0"),
        (63, b"\x01", "reserved", "must be 0"),
    ],
)
def test_bad_header_fields(offset: int, value: bytes, field: str, hint: str) -> None:
    blob = bytearray(cchet.seal(KEY, b"hello"))
    blob[offset : offset + len(value)] = value
    with pytest.raises(SealedFormatError, match=hint) as info:
        cchet.unseal(KEY, blob)
    assert info.value.field == field


def test_stream_limit_is_enforced_on_seal_and_read(monkeypatch: pytest.MonkeyPatch) -> None:
    blob = cchet.seal(KEY, b"x" * 5000, chunk_size=4096)
    monkeypatch.setattr(fmt, "MAX_STREAM_BYTES", 4096)
    with pytest.raises(ValueError, match="per-stream limit"):
        cchet.seal(KEY, b"x" * 5000)
    with pytest.raises(SealedFormatError, match="per-stream limit") as info:
        cchet.unseal(KEY, blob)
    assert info.value.field == "plaintext_length"
    w = cchet.SealWriter(KEY, io.BytesIO(), chunk_size=4096)
    with pytest.raises(ValueError, match="per-stream limit"):
        w.write(b"x" * 5000)


def test_header_with_no_chunk_and_empty_last_chunk() -> None:
    sink = io.BytesIO()
    with cchet.SealWriter(KEY, sink, chunk_size=4096) as w:
        w.write(b"x" * 4096)
    blob = sink.getvalue()
    with pytest.raises(SealedFormatError, match="no chunk"):
        cchet.unseal(KEY, blob[:72])
    empty_tail = blob + bytes(16)
    with pytest.raises(SealedFormatError, match="empty last chunk"):
        cchet.unseal(KEY, empty_tail)
