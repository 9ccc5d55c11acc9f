"""The report-data binding of DESIGN.md section 4: what a worker's 64 bytes of CPU report data must be.

::

    report_data = SHA-512( "cchet/v1/bind" || 0x00
                           || broker_id                 32 B  SHA-256 of the broker's signing key (SPKI DER)
                           || nonce                     32 B  single use, from the broker
                           || u16 kem_id || u16 kdf_id || u16 aead_id      RFC 9180 HPKE suite ids
                           || u16 len(pk) || pk         the worker's ephemeral HPKE public key
                           || request_digest            32 B  SHA-256 of the canonical key request
                           || u8 n_gpus
                           || { u8 index || SHA-384( u32 len(req) || req || u32 len(resp) || resp ) }
                              * n_gpus )
    gpu_nonce(i) = SHA-256( "cchet/v1/gpu" || 0x00 || nonce || u32 i )   the SPDM request nonce of GPU i

Integers are big-endian. For each GPU, ``req`` is the 37-byte SPDM GET_MEASUREMENTS request and ``resp`` the
MEASUREMENTS response including its signature, without any NVML buffer padding. Every length is checked
exactly: nothing is padded or truncated. :func:`report_data_matches` compares in constant time.

What it protects: evidence made for one broker, nonce, HPKE key, request or set of GPU reports does not
match any other. What it does not: it says nothing about the evidence's signatures (verification) or the
measurements (policy).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

__all__ = [
    "BIND_LABEL",
    "GPU_LABEL",
    "Binding",
    "broker_id_for",
    "compute_report_data",
    "gpu_nonce",
    "gpu_transcript_digest",
    "report_data_matches",
]

BIND_LABEL = b"cchet/v1/bind\x00"
GPU_LABEL = b"cchet/v1/gpu\x00"


def _exact(value: bytes, size: int, name: str) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != size:
        raise ValueError(f"{name} must be exactly {size} bytes")
    return bytes(value)


def _u16(value: int, name: str) -> bytes:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{name} must fit in 16 bits")
    return struct.pack(">H", value)


@dataclass(frozen=True)
class Binding:
    """The broker-side inputs of the transcript apart from the nonce and the GPU reports.

    ``broker_id`` and ``request_digest`` are 32 bytes; the HPKE ids are RFC 9180 code points; ``public_key``
    is the worker's encoded ephemeral HPKE public key (at most 65535 bytes). Validated on construction
    (``ValueError``).
    """

    broker_id: bytes
    kem_id: int
    kdf_id: int
    aead_id: int
    public_key: bytes
    request_digest: bytes

    def __post_init__(self) -> None:
        _exact(self.broker_id, 32, "broker_id")
        _exact(self.request_digest, 32, "request_digest")
        for name in ("kem_id", "kdf_id", "aead_id"):
            _u16(getattr(self, name), name)
        if not isinstance(self.public_key, bytes) or not 0 < len(self.public_key) <= 0xFFFF:
            raise ValueError("public_key must be 1..65535 bytes")


def broker_id_for(public_key: PublicKeyTypes) -> bytes:
    """SHA-256 of a broker signing key's SubjectPublicKeyInfo DER."""
    from cryptography.hazmat.primitives import serialization

    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()


def gpu_nonce(nonce: bytes, index: int) -> bytes:
    """The 32-byte SPDM request nonce GPU ``index`` must answer. Raises ``ValueError`` on bad sizes."""
    if not 0 <= index <= 0xFFFFFFFF:
        raise ValueError("GPU index must fit in 32 bits")
    return hashlib.sha256(GPU_LABEL + _exact(nonce, 32, "nonce") + struct.pack(">I", index)).digest()


def gpu_transcript_digest(request: bytes, response: bytes) -> bytes:
    """SHA-384( u32 len(req) || req || u32 len(resp) || resp )."""
    if len(request) > 0xFFFFFFFF or len(response) > 0xFFFFFFFF:
        raise ValueError("SPDM messages must fit 32-bit lengths")
    return hashlib.sha384(
        struct.pack(">I", len(request)) + request + struct.pack(">I", len(response)) + response
    ).digest()


def compute_report_data(binding: Binding, nonce: bytes, gpus: Sequence[tuple[int, bytes, bytes]] = ()) -> bytes:
    """The 64 bytes the worker's CPU report data must equal.

    ``gpus`` lists (index, SPDM request, SPDM response) in ascending, distinct index order, at most 255.
    Raises ``ValueError`` on any size or ordering problem.
    """
    if len(gpus) > 255:
        raise ValueError("at most 255 GPUs")
    indices = [g[0] for g in gpus]
    if indices != sorted(set(indices)) or any(not 0 <= i <= 255 for i in indices):
        raise ValueError("GPU indices must be distinct, ascending and in 0..255")
    parts = [
        BIND_LABEL,
        binding.broker_id,
        _exact(nonce, 32, "nonce"),
        _u16(binding.kem_id, "kem_id"),
        _u16(binding.kdf_id, "kdf_id"),
        _u16(binding.aead_id, "aead_id"),
        _u16(len(binding.public_key), "len(public_key)"),
        binding.public_key,
        binding.request_digest,
        bytes((len(gpus),)),
    ]
    for index, request, response in gpus:
        parts.append(bytes((index,)))
        parts.append(gpu_transcript_digest(request, response))
    return hashlib.sha512(b"".join(parts)).digest()


def report_data_matches(expected: bytes, actual: bytes) -> bool:
    """True when ``actual`` is exactly the 64 ``expected`` bytes; constant time in the contents."""
    if len(expected) != 64 or len(actual) != 64:
        return False
    return hmac.compare_digest(expected, actual)
