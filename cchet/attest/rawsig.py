"""Fixed-width ECDSA encodings used by attestation formats, converted to and from what ``cryptography`` takes.

DCAP quotes and NVIDIA reports store r||s big-endian; SEV-SNP reports store r and s little-endian in
72-byte fields; DCAP quotes store attestation keys as the raw point x||y.
"""

from __future__ import annotations

from typing import Literal

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

__all__ = ["der_from_raw", "point_bytes", "public_key_from_point", "raw_from_der"]


def raw_from_der(der: bytes, width: int, *, byteorder: str = "big") -> bytes:
    """r||s, each ``width`` bytes in ``byteorder``, from a DER ECDSA signature."""
    r, s = decode_dss_signature(der)
    order: Literal["little", "big"] = "little" if byteorder == "little" else "big"
    return r.to_bytes(width, order) + s.to_bytes(width, order)


def der_from_raw(raw: bytes, *, byteorder: str = "big") -> bytes:
    """A DER ECDSA signature from r||s of equal halves. Raises ``ValueError`` for an odd length."""
    if len(raw) % 2 or not raw:
        raise ValueError("raw ECDSA signature must be two equal halves")
    half = len(raw) // 2
    order: Literal["little", "big"] = "little" if byteorder == "little" else "big"
    return encode_dss_signature(int.from_bytes(raw[:half], order), int.from_bytes(raw[half:], order))


def point_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    """The raw x||y of a public key (no 0x04 prefix)."""
    n = (key.curve.key_size + 7) // 8
    nums = key.public_numbers()
    return nums.x.to_bytes(n, "big") + nums.y.to_bytes(n, "big")


def public_key_from_point(raw: bytes, curve: ec.EllipticCurve) -> ec.EllipticCurvePublicKey:
    """A public key from raw x||y; raises ``ValueError`` when the point is not on ``curve``."""
    return ec.EllipticCurvePublicKey.from_encoded_point(curve, b"\x04" + raw)
