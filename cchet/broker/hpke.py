"""HPKE (RFC 9180) for the key bundle: suites, explicit public-key encodings, seal and open.

Suites are named by their RFC 9180 / IANA code points. The default is MLKEM768-X25519 (KEM 0x647A, X-Wing),
HKDF-SHA256 (0x0001), AES-256-GCM (0x0002); DHKEM(X25519) (0x0020) is selectable.

Public keys travel in an explicit encoding: X25519 is its 32 raw bytes; MLKEM768-X25519 is the 1184-byte
ML-KEM-768 encapsulation key followed by the 32-byte X25519 key (1216 bytes), the X-Wing order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

from cryptography.hazmat.primitives import hpke as _hpke
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

__all__ = ["DEFAULT_SUITE", "SUITES", "HpkeKeyPair", "HpkeSuite", "seal_to"]

_RAW = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
MLKEM768_PK_SIZE = 1184


@dataclass(frozen=True)
class HpkeSuite:
    name: str
    kem_id: int
    kdf_id: int = 0x0001
    aead_id: int = 0x0002

    @property
    def ids(self) -> tuple[int, int, int]:
        return (self.kem_id, self.kdf_id, self.aead_id)

    def _suite(self) -> _hpke.Suite:
        kem = {0x647A: _hpke.KEM.MLKEM768_X25519, 0x0020: _hpke.KEM.X25519}[self.kem_id]
        return _hpke.Suite(kem, _hpke.KDF.HKDF_SHA256, _hpke.AEAD.AES_256_GCM)

    def public_key_from_bytes(self, data: bytes) -> object:
        """Decode an explicitly encoded public key; ``ValueError`` names the expected size."""
        if self.kem_id == 0x0020:
            if len(data) != 32:
                raise ValueError(f"an X25519 HPKE public key is 32 bytes, got {len(data)}")
            return x25519.X25519PublicKey.from_public_bytes(data)
        if len(data) != MLKEM768_PK_SIZE + 32:
            raise ValueError(f"an MLKEM768-X25519 HPKE public key is {MLKEM768_PK_SIZE + 32} bytes, got {len(data)}")
        return _hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(data[:MLKEM768_PK_SIZE]),
            x25519.X25519PublicKey.from_public_bytes(data[MLKEM768_PK_SIZE:]),
        )


SUITES = {
    "MLKEM768-X25519": HpkeSuite("MLKEM768-X25519", 0x647A),
    "X25519": HpkeSuite("X25519", 0x0020),
}
DEFAULT_SUITE = SUITES["MLKEM768-X25519"]


def suite_by_ids(kem_id: int, kdf_id: int, aead_id: int) -> HpkeSuite:
    for suite in SUITES.values():
        if suite.ids == (kem_id, kdf_id, aead_id):
            return suite
    raise ValueError(
        f"unsupported HPKE suite ({kem_id:#06x}, {kdf_id:#06x}, {aead_id:#06x}); supported: "
        + ", ".join(f"{s.name} {s.ids}" for s in SUITES.values())
    )


class HpkeKeyPair:
    """An ephemeral HPKE key pair held by a worker for one key request. Refuses pickling."""

    __slots__ = ("__private", "public_bytes", "suite")

    def __init__(self, suite: HpkeSuite = DEFAULT_SUITE) -> None:
        self.suite = suite
        if suite.kem_id == 0x0020:
            sk = x25519.X25519PrivateKey.generate()
            self.__private: object = sk
            self.public_bytes = sk.public_key().public_bytes(*_RAW)
        else:
            k_sk = mlkem.MLKEM768PrivateKey.generate()
            x_sk = x25519.X25519PrivateKey.generate()
            self.__private = _hpke.MLKEM768X25519PrivateKey(k_sk, x_sk)
            self.public_bytes = k_sk.public_key().public_bytes(*_RAW) + x_sk.public_key().public_bytes(*_RAW)

    def open(self, ciphertext: bytes, info: bytes) -> bytes:
        """Decrypt a bundle sealed to this key pair; raises ``cryptography``'s ``InvalidTag`` on failure."""
        return self.suite._suite().decrypt(ciphertext, self.__private, info=info)  # type: ignore[arg-type]

    def __reduce__(self) -> NoReturn:
        raise TypeError("HpkeKeyPair refuses to be pickled")


def seal_to(suite: HpkeSuite, public_key: bytes, plaintext: bytes, info: bytes) -> bytes:
    """HPKE base-mode seal of ``plaintext`` to an encoded public key, with ``info`` bound."""
    pk = suite.public_key_from_bytes(public_key)
    return suite._suite().encrypt(plaintext, pk, info=info)  # type: ignore[arg-type]
