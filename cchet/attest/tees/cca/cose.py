"""COSE_Sign1 signatures of CCA tokens (RFC 9052 section 4.4, RFC 9053 section 2.1) and the keys that make them.

The Sig_structure is ``["Signature1", protected, h'', payload]`` over the protected header and payload bytes
exactly as received (:meth:`~cchet.attest.tees.cca.token.CoseSign1.sig_structure`, encoded by cbor2); the
signature is ECDSA with the curve's fixed-width ``r || s``. ECDSA itself is ``cryptography``'s: pycose 1.1
cannot decode a tagged COSE_Sign1 under cbor2 6 (it expects the list and dict cbor2 5 returned inside a tag,
cbor2 6 returns a tuple and a frozendict) and verifies with the pure-Python ``ecdsa`` package, about ten
times slower; the tests check that pycose agrees on every token here (docs/tees/cca.md).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cchet.attest.rawsig import der_from_raw, raw_from_der
from cchet.attest.tees.cca.token import CoseSign1

__all__ = [
    "ALGORITHMS",
    "cose_key_bytes",
    "jwk_public_key",
    "public_key_from_cose_key",
    "public_key_from_rak",
    "sign_sign1",
    "spki_der",
    "verify_sign1",
]

# COSE alg -> (curve, hash, name): ES256, ES384, ES512 (RFC 9053 section 2.1, each with its own curve)
ALGORITHMS: Mapping[int, tuple[type[ec.EllipticCurve], type[hashes.HashAlgorithm], str]] = {
    -7: (ec.SECP256R1, hashes.SHA256, "ES256"),
    -35: (ec.SECP384R1, hashes.SHA384, "ES384"),
    -36: (ec.SECP521R1, hashes.SHA512, "ES512"),
}
_COSE_CURVES: Mapping[int, type[ec.EllipticCurve]] = {1: ec.SECP256R1, 2: ec.SECP384R1, 3: ec.SECP521R1}
_JWK_CURVES: Mapping[str, type[ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
}


def _width(curve: ec.EllipticCurve) -> int:
    return (curve.key_size + 7) // 8


def verify_sign1(message: CoseSign1, key: ec.EllipticCurvePublicKey) -> str | None:
    """None when ``message``'s signature verifies under ``key``; otherwise why not (one line). Only ES256,
    ES384 and ES512 on their own curves are accepted, with an ``r || s`` of exactly twice the curve's width."""
    algorithm = ALGORITHMS.get(message.algorithm)
    if algorithm is None:
        return f"COSE algorithm {message.algorithm} is not ES256, ES384 or ES512"
    curve, digest, name = algorithm
    if not isinstance(key.curve, curve):
        return f"{name} needs a {curve.name} key, the key is {key.curve.name}"
    if len(message.signature) != 2 * _width(key.curve):
        return f"the {name} signature is {len(message.signature)} bytes, expected {2 * _width(key.curve)} (r || s)"
    try:
        key.verify(der_from_raw(message.signature), message.sig_structure(), ec.ECDSA(digest()))
    except InvalidSignature:
        return f"the {name} signature does not verify"
    return None


def sign_sign1(protected: bytes, payload: bytes, key: ec.EllipticCurvePrivateKey, algorithm: int) -> CoseSign1:
    """A COSE_Sign1 over ``payload`` with the serialized ``protected`` header (which must name ``algorithm``)
    and an empty unprotected header; for the simulator."""
    curve, digest, _ = ALGORITHMS[algorithm]
    if not isinstance(key.curve, curve):
        raise ValueError(f"COSE algorithm {algorithm} needs a {curve.name} key")
    unsigned = CoseSign1(protected, b"\xa0", payload, b"", algorithm)
    der = key.sign(unsigned.sig_structure(), ec.ECDSA(digest()))
    return CoseSign1(protected, b"\xa0", payload, raw_from_der(der, _width(key.curve)), algorithm)


def public_key_from_rak(rak: bytes, cose_key: bool) -> ec.EllipticCurvePublicKey:
    """The realm attestation key from its claim: a COSE_Key when ``cose_key`` (realm profile), else a raw
    uncompressed P-384 point. Raises ``ValueError`` when it is not a point on its curve."""
    if cose_key:
        import cbor2

        try:
            decoded = cbor2.loads(rak)
        except Exception as e:  # cbor2 raises several types for malformed input
            raise ValueError(f"the RAK is not a COSE_Key: {e}") from None
        return public_key_from_cose_key(decoded)
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), rak)


def public_key_from_cose_key(key: Any) -> ec.EllipticCurvePublicKey:
    """An EC2 COSE_Key (RFC 9053 section 7.1.1: kty 2, crv -1, x -2, y -3) as a public key; ``ValueError``
    otherwise."""
    if not isinstance(key, Mapping) or key.get(1) != 2:
        raise ValueError("not an EC2 COSE_Key (kty 2)")
    curve = _COSE_CURVES.get(key.get(-1))  # type: ignore[arg-type]
    x, y = key.get(-2), key.get(-3)
    if curve is None or not isinstance(x, bytes) or not isinstance(y, bytes):
        raise ValueError("the COSE_Key names no supported curve (P-256, P-384, P-521) or lacks x and y")
    width = _width(curve())
    if len(x) != width or len(y) != width:
        raise ValueError(f"the COSE_Key's x and y must be {width} bytes each")
    return ec.EllipticCurvePublicKey.from_encoded_point(curve(), b"\x04" + x + y)


def cose_key_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    """The EC2 COSE_Key encoding of ``key`` (kty, crv, x, y), as the realm profile's RAK claim carries it."""
    import cbor2

    crv = next(label for label, curve in _COSE_CURVES.items() if isinstance(key.curve, curve))
    n = _width(key.curve)
    nums = key.public_numbers()
    return bytes(cbor2.dumps({1: 2, -1: crv, -2: nums.x.to_bytes(n, "big"), -3: nums.y.to_bytes(n, "big")}))


def _b64url(text: Any, field: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"{field} must be base64url text")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError(f"{field} is not base64url") from None


def jwk_public_key(jwk: Any) -> ec.EllipticCurvePublicKey:
    """An EC public JWK (RFC 7518 section 6.2: kty EC, crv P-256/P-384/P-521, x, y) as a public key; raises
    ``ValueError`` naming what is wrong (a private ``d`` is refused: endorsements hold public keys)."""
    if not isinstance(jwk, Mapping) or jwk.get("kty") != "EC":
        raise ValueError("not an EC JWK (kty EC)")
    if "d" in jwk:
        raise ValueError("the JWK holds a private key; an endorsement holds the public key only")
    curve = _JWK_CURVES.get(jwk.get("crv"))  # type: ignore[arg-type]
    if curve is None:
        raise ValueError(f"JWK curve {jwk.get('crv')!r} is not P-256, P-384 or P-521")
    x, y = _b64url(jwk.get("x"), "x"), _b64url(jwk.get("y"), "y")
    width = _width(curve())
    if len(x) != width or len(y) != width:
        raise ValueError(f"JWK x and y must be {width} bytes each")
    return ec.EllipticCurvePublicKey.from_encoded_point(curve(), b"\x04" + x + y)


def spki_der(key: ec.EllipticCurvePublicKey) -> bytes:
    """SubjectPublicKeyInfo DER of ``key`` (what a CCA trust anchor holds)."""
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
