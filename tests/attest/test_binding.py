"""The report-data binding of DESIGN.md section 4: exact layout, exact lengths, every field matters."""

from __future__ import annotations

import dataclasses
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from cchet.attest.binding import (
    Binding,
    broker_id_for,
    compute_report_data,
    gpu_nonce,
    gpu_transcript_digest,
    report_data_matches,
)

B = Binding(bytes([1]) * 32, 0x0020, 0x0001, 0x0003, bytes([2]) * 32, bytes([3]) * 32)
NONCE = bytes([4]) * 32
GPUS = [(0, b"req0", b"resp0"), (1, b"req1", b"resp1")]


def _independent(b: Binding, nonce: bytes, gpus: list[tuple[int, bytes, bytes]]) -> bytes:
    """The transcript written out again from DESIGN.md, field by field."""
    t = b"cchet/v1/bind" + b"\x00" + b.broker_id + nonce
    t += b.kem_id.to_bytes(2, "big") + b.kdf_id.to_bytes(2, "big") + b.aead_id.to_bytes(2, "big")
    t += len(b.public_key).to_bytes(2, "big") + b.public_key + b.request_digest + bytes([len(gpus)])
    for i, req, resp in gpus:
        inner = len(req).to_bytes(4, "big") + req + len(resp).to_bytes(4, "big") + resp
        t += bytes([i]) + hashlib.sha384(inner).digest()
    return hashlib.sha512(t).digest()


def test_matches_the_design_layout() -> None:
    assert compute_report_data(B, NONCE, GPUS) == _independent(B, NONCE, GPUS)
    assert compute_report_data(B, NONCE) == _independent(B, NONCE, [])
    assert len(compute_report_data(B, NONCE)) == 64


def test_gpu_nonce_layout() -> None:
    want = hashlib.sha256(b"cchet/v1/gpu\x00" + NONCE + struct.pack(">I", 3)).digest()
    assert gpu_nonce(NONCE, 3) == want and gpu_nonce(NONCE, 3) != gpu_nonce(NONCE, 4)


@pytest.mark.parametrize(
    "change",
    [
        {"broker_id": bytes(32)},
        {"kem_id": 0x0021},
        {"kdf_id": 0x0002},
        {"aead_id": 0x0001},
        {"public_key": bytes([2]) * 31},
        {"public_key": bytes([2]) * 31 + b"\x03"},
        {"request_digest": bytes(32)},
    ],
)
def test_each_binding_field_changes_the_result(change: dict[str, object]) -> None:
    assert compute_report_data(dataclasses.replace(B, **change), NONCE, GPUS) != compute_report_data(
        B, NONCE, GPUS
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "gpus",
    [
        [],
        GPUS[:1],
        [(0, b"req0", b"resp0"), (2, b"req1", b"resp1")],
        [(0, b"req0x", b"resp0"), (1, b"req1", b"resp1")],
        [(0, b"req0", b"resp0x"), (1, b"req1", b"resp1")],
        [(0, b"req", b"0resp0"), (1, b"req1", b"resp1")],  # moving bytes between req and resp
    ],
)
def test_gpu_inputs_change_the_result(gpus: list[tuple[int, bytes, bytes]]) -> None:
    assert compute_report_data(B, NONCE, gpus) != compute_report_data(B, NONCE, GPUS)


def test_nonce_changes_the_result() -> None:
    assert compute_report_data(B, bytes(32), GPUS) != compute_report_data(B, NONCE, GPUS)


@pytest.mark.parametrize("bad", [bytes(31), bytes(33), b""])
def test_exact_lengths(bad: bytes) -> None:
    with pytest.raises(ValueError, match="exactly 32"):
        compute_report_data(B, bad)
    with pytest.raises(ValueError, match="exactly 32"):
        gpu_nonce(bad, 0)
    with pytest.raises(ValueError, match="exactly 32"):
        Binding(bad, 1, 1, 1, b"k", bytes(32))
    with pytest.raises(ValueError, match="exactly 32"):
        Binding(bytes(32), 1, 1, 1, b"k", bad)


def test_field_ranges() -> None:
    with pytest.raises(ValueError, match="kem_id"):
        Binding(bytes(32), 0x10000, 1, 1, b"k", bytes(32))
    with pytest.raises(ValueError, match="public_key"):
        Binding(bytes(32), 1, 1, 1, b"", bytes(32))
    with pytest.raises(ValueError, match="ascending"):
        compute_report_data(B, NONCE, [GPUS[1], GPUS[0]])
    with pytest.raises(ValueError, match="ascending"):
        compute_report_data(B, NONCE, [GPUS[0], GPUS[0]])


def test_report_data_compare_is_exact_and_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    rd = compute_report_data(B, NONCE)
    assert report_data_matches(rd, rd)
    assert not report_data_matches(rd, rd[:63])
    assert not report_data_matches(rd, rd + b"\x00")
    assert not report_data_matches(rd[:32] + bytes(32), rd[:32])  # no silent padding
    assert not report_data_matches(rd, bytes([rd[0] ^ 1]) + rd[1:])
    calls = []
    import hmac

    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("cchet.attest.binding.hmac.compare_digest", spy)
    assert report_data_matches(rd, rd) and calls == [(rd, rd)]


def test_transcript_digest_is_length_prefixed() -> None:
    assert gpu_transcript_digest(b"ab", b"c") != gpu_transcript_digest(b"a", b"bc")


def test_broker_id_is_sha256_of_spki() -> None:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert broker_id_for(key) == hashlib.sha256(spki).digest()
