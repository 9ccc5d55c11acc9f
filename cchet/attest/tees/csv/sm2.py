"""SM2 signatures with SM3 (GB/T 32918.2, GB/T 32905) as Hygon's certificates and reports use them, on ``gmssl``.

Every Hygon signature is SM2 over ``e = SM3(Z || message)``, where ``Z = SM3(ENTL || ID || a || b || xG || yG ||
xA || yA)`` binds the signer's public key and its *distinguishing ID*: the ``user_id`` of the signer's certificate
(``HYGON-SSD-HRK``, ``-HSK``, ``-CEK``, ``-PEK``), never the default ``1234567812345678``.

``gmssl`` (the library this module wraps) hard-codes that default ID in ``CryptSM2.sign_with_sm3`` /
``verify_with_sm3``, so this module computes ``Z`` and ``e`` itself with gmssl's SM3 and hands ``e`` to gmssl's
SM2 primitive (``CryptSM2.verify`` / ``CryptSM2.sign`` take the digest). It also guards against three gmssl
pitfalls: its constructor strips *every* leading ``0`` and ``4`` hex digit of a key given with the ``04`` prefix
(so the key is set directly, without prefix), it neither range-checks ``r``/``s`` nor checks that the public key
lies on the curve (both done here first, and degenerate points are a failed verification, never an exception),
and its random nonces come from :mod:`random` (signing here draws ``k`` from :mod:`secrets`).
``tests/attest/tees/test_csv_sm2.py`` checks ``Z`` against gmssl's own default-ID computation and signatures
against OpenSSL's SM2 with the same distinguishing ID.
"""

from __future__ import annotations

import functools
import secrets

__all__ = [
    "CURVE_A",
    "CURVE_B",
    "CURVE_N",
    "CURVE_P",
    "DEFAULT_ID",
    "generate",
    "message_digest",
    "on_curve",
    "sign",
    "sm3",
    "verify",
    "z_value",
]

CURVE_P = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF", 16)
CURVE_A = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC", 16)
CURVE_B = int("28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93", 16)
CURVE_N = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123", 16)
GX = int("32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7", 16)
GY = int("BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0", 16)
DEFAULT_ID = b"1234567812345678"
"""The ID of GB/T 35276 that gmssl's ``*_with_sm3`` methods always use; Hygon's signatures do not."""


def _b32(v: int) -> bytes:
    return v.to_bytes(32, "big")


def sm3(data: bytes) -> bytes:
    """The SM3 digest of ``data`` (gmssl)."""
    from gmssl import sm3 as gm_sm3

    return bytes.fromhex(gm_sm3.sm3_hash(list(data)))


def on_curve(x: int, y: int) -> bool:
    """Whether (x, y) is a point of the SM2 curve (affine, not the identity)."""
    if not (0 <= x < CURVE_P and 0 <= y < CURVE_P):
        return False
    return (y * y - (x * x * x + CURVE_A * x + CURVE_B)) % CURVE_P == 0


def z_value(user_id: bytes, x: int, y: int) -> bytes:
    """``Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA)``, ENTL the ID's length in bits (16-bit, big-endian).
    Raises ``ValueError`` for an ID of 8 KiB or more (ENTL would not fit)."""
    if len(user_id) >= 8192:
        raise ValueError("an SM2 distinguishing ID must be shorter than 8192 bytes")
    entl = (len(user_id) * 8).to_bytes(2, "big")
    return sm3(entl + user_id + b"".join(_b32(v) for v in (CURVE_A, CURVE_B, GX, GY, x, y)))


def message_digest(user_id: bytes, x: int, y: int, message: bytes) -> bytes:
    """``e = SM3(Z || message)``: what the SM2 signature of ``message`` by key (x, y) with ``user_id`` signs."""
    return sm3(z_value(user_id, x, y) + message)


@functools.lru_cache(maxsize=1024)
def _verify(point: tuple[int, int], user_id: bytes, message: bytes, signature: tuple[int, int]) -> bool:
    from gmssl import sm2 as gm_sm2

    (x, y), (r, s) = point, signature
    if not on_curve(x, y) or not (1 <= r < CURVE_N and 1 <= s < CURVE_N):
        return False
    e = message_digest(user_id, x, y, message)
    signer = gm_sm2.CryptSM2(private_key="", public_key="")
    signer.public_key = f"{x:064x}{y:064x}"  # not through the constructor, which mangles keys starting 04
    try:
        return bool(signer.verify(f"{r:064x}{s:064x}", e))
    except (TypeError, ValueError, IndexError):  # a degenerate intermediate point: not a valid signature
        return False


def verify(point: tuple[int, int], user_id: bytes, message: bytes, signature: tuple[int, int]) -> bool:
    """Whether ``signature`` (r, s) is an SM2 signature of ``message`` by the public key ``point`` (x, y) with
    distinguishing ID
    ``user_id``. Never raises for bad input: a key off the curve, ``r`` or ``s`` outside [1, n-1] or a degenerate
    point is simply not a valid signature. Verdicts are remembered per process (the function is pure)."""
    return _verify((point[0], point[1]), bytes(user_id), bytes(message), (signature[0], signature[1]))


def generate() -> tuple[int, int, int]:
    """A fresh key pair (d, x, y), ``d`` from :mod:`secrets`. For the simulator only: it protects nothing."""
    d = secrets.randbelow(CURVE_N - 2) + 1
    x, y = _public(d)
    return d, x, y


def sign(d: int, user_id: bytes, message: bytes) -> tuple[int, int]:
    """An SM2 signature (r, s) of ``message`` by private key ``d`` with distinguishing ID ``user_id``, the nonce
    drawn from :mod:`secrets`. For the simulator only."""
    from gmssl import sm2 as gm_sm2

    x, y = _public(d)
    e = message_digest(user_id, x, y, message)
    signer = gm_sm2.CryptSM2(private_key=f"{d:064x}", public_key="")
    while True:
        k = secrets.randbelow(CURVE_N - 1) + 1
        out = signer.sign(e, f"{k:064x}")
        if out is not None:
            return int(out[:64], 16), int(out[64:], 16)


@functools.lru_cache(maxsize=64)
def _public(d: int) -> tuple[int, int]:
    """The public point of ``d``, by gmssl's scalar multiplication (its only key-generation primitive)."""
    from gmssl import sm2 as gm_sm2

    point = gm_sm2.CryptSM2(private_key="", public_key="")._kg(d, f"{GX:064x}{GY:064x}")
    return int(point[:64], 16), int(point[64:], 16)
