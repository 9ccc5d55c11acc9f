"""Checking the fixed-width ECDSA signatures of attestation formats against a certificate or raw key."""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from cchet.attest.rawsig import der_from_raw

__all__ = ["ecdsa_valid", "ecdsa_valid_uncached"]


def ecdsa_valid(
    key: ec.EllipticCurvePublicKey | x509.Certificate, message: bytes, raw: bytes, *, byteorder: str = "big"
) -> bool:
    """True when ``raw`` (r||s) is a valid ECDSA signature of ``message``.

    SHA-256 is used with P-256 keys, SHA-384 with P-384 keys. Signatures by a certificate's key that verified
    are remembered (:func:`cchet.attest.verify.memo.signature_valid`)."""
    if isinstance(key, x509.Certificate):
        from cchet.attest.verify.memo import signature_valid

        return signature_valid(key, message, raw, byteorder=byteorder)
    return ecdsa_valid_uncached(key, message, raw, byteorder=byteorder)


def ecdsa_valid_uncached(
    key: ec.EllipticCurvePublicKey | x509.Certificate, message: bytes, raw: bytes, *, byteorder: str = "big"
) -> bool:
    """:func:`ecdsa_valid` without memoisation."""
    try:
        pub = key.public_key() if isinstance(key, x509.Certificate) else key
    except (ValueError, UnsupportedAlgorithm):
        return False
    if not isinstance(pub, ec.EllipticCurvePublicKey):
        return False
    algo = hashes.SHA384() if pub.curve.key_size >= 384 else hashes.SHA256()
    try:
        pub.verify(der_from_raw(raw, byteorder=byteorder), message, ec.ECDSA(algo))
    except (InvalidSignature, ValueError):
        return False
    return True
