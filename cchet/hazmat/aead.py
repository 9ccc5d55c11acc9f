"""Single-message AES-GCM with a caller-chosen nonce, on each backend.

.. warning::
   **Dangerous.** A nonce must never repeat under one key: one repeat leaks the XOR of two plaintexts
   and lets an attacker forge tags. The sealed-stream layer (:func:`cchet.seal`) derives a fresh stream
   key per message and builds every nonce itself; use it instead unless you are interoperating or
   testing.

Backends implement one tiny interface, :class:`SegmentCipher` (seal or open one segment into a caller
buffer under a fixed key); the sealed-stream framing is written once on top of it, so every backend
produces identical bytes:

* ``"openssl"`` (default) -- OpenSSL through ``cryptography``'s ``AESGCM.encrypt_into``/``decrypt_into``.
* ``"pycryptodome"`` -- pycryptodome's GCM mode with ``output=``.

Choose one per call (``backend=``) or for the process with ``CCHET_AEAD_BACKEND``.

Both libraries write unauthenticated plaintext into the output buffer before the tag is checked;
:meth:`SegmentCipher.open_into` reports the verdict and callers must zero the output on failure (the
stream layer does).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol

from Crypto.Cipher import AES
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cchet.errors import IntegrityError

__all__ = [
    "BACKENDS",
    "TAG_SIZE",
    "SegmentCipher",
    "backend_name",
    "decrypt",
    "encrypt",
    "new_cipher",
]

TAG_SIZE = 16
BACKEND_ENV = "CCHET_AEAD_BACKEND"


class SegmentCipher(Protocol):
    """AES-GCM under one fixed key: seal or open one segment into a caller-provided buffer."""

    def seal_into(self, nonce: bytes, aad: bytes, src: memoryview, dst: memoryview) -> None:
        """Write ``ciphertext || tag`` (``len(src) + 16`` bytes) into ``dst``."""

    def open_into(self, nonce: bytes, aad: bytes, src: memoryview, dst: memoryview) -> bool:
        """Decrypt ``src`` (``ciphertext || tag``) into ``dst`` (``len(src) - 16`` bytes).

        Returns False when the tag fails; ``dst`` then holds unauthenticated bytes the caller must zero.
        """


class _OpenSSLCipher:
    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal_into(self, nonce: bytes, aad: bytes, src: memoryview, dst: memoryview) -> None:
        self._aead.encrypt_into(nonce, src, aad, dst)

    def open_into(self, nonce: bytes, aad: bytes, src: memoryview, dst: memoryview) -> bool:
        try:
            self._aead.decrypt_into(nonce, src, aad, dst)
        except InvalidTag:
            return False
        return True


class _PyCryptodomeCipher:
    __slots__ = ("_new", "_tag_size")

    def __init__(self, key: bytes, tag_size: int = TAG_SIZE) -> None:
        self._tag_size = tag_size

        def new(nonce: bytes) -> object:
            return AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=tag_size)

        self._new: Callable[[bytes], object] = new

    def seal_into(self, nonce: bytes, aad: bytes, src: memoryview, dst: memoryview) -> None:
        gcm = self._new(nonce)
        n = len(src)
        gcm.update(aad)  # type: ignore[attr-defined]
        if n:
            gcm.encrypt(src, output=dst[:n])  # type: ignore[attr-defined]
        dst[n : n + self._tag_size] = gcm.digest()  # type: ignore[attr-defined]

    def open_into(self, nonce: bytes, aad: bytes, src: memoryview, dst: memoryview) -> bool:
        n = len(src) - self._tag_size
        gcm = self._new(nonce)
        gcm.update(aad)  # type: ignore[attr-defined]
        if n:
            gcm.decrypt(src[:n], output=dst[:n])  # type: ignore[attr-defined]
        try:
            gcm.verify(src[n:])  # type: ignore[attr-defined]
        except ValueError:
            return False
        return True


BACKENDS: dict[str, Callable[[bytes], SegmentCipher]] = {
    "openssl": _OpenSSLCipher,
    "pycryptodome": _PyCryptodomeCipher,
}


def backend_name(backend: str | None = None) -> str:
    """Resolve ``backend`` (or ``CCHET_AEAD_BACKEND``, or ``"openssl"``) to a known backend name.

    Raises ``ValueError`` naming the valid choices for anything else.
    """
    name = backend if backend is not None else os.environ.get(BACKEND_ENV) or "openssl"
    if name not in BACKENDS:
        source = "backend=" if backend is not None else f"${BACKEND_ENV}="
        raise ValueError(f"unknown AEAD backend {source}{name!r}: choose one of {', '.join(sorted(BACKENDS))}")
    return name


def new_cipher(key: bytes, backend: str | None = None) -> SegmentCipher:
    """A :class:`SegmentCipher` for a raw AES key (16, 24 or 32 bytes) on the chosen backend."""
    if len(key) not in (16, 24, 32):
        raise ValueError(f"AES keys are 16, 24 or 32 bytes, got {len(key)}")
    return BACKENDS[backend_name(backend)](bytes(key))


def _cipher(key: bytes, backend: str | None, tag_length: int) -> SegmentCipher:
    name = backend_name(backend)
    if tag_length == TAG_SIZE:
        return new_cipher(key, name)
    if not 4 <= tag_length <= 16:
        raise ValueError(f"GCM tags are 4..16 bytes, got {tag_length}")
    if name != "pycryptodome":
        raise ValueError(
            f"the {name} backend supports only {TAG_SIZE}-byte tags; use backend='pycryptodome' "
            f"for {tag_length}-byte tags"
        )
    return _PyCryptodomeCipher(bytes(key), tag_length)


def _check_nonce(nonce: bytes, backend: str | None) -> None:
    if backend_name(backend) == "openssl" and not 8 <= len(nonce) <= 128:
        raise ValueError(
            f"the openssl backend takes nonces of 8..128 bytes, got {len(nonce)}; "
            "use backend='pycryptodome' for other lengths"
        )
    if not nonce:
        raise ValueError("GCM needs a non-empty nonce")


def encrypt(
    key: bytes,
    nonce: bytes,
    plaintext: bytes,
    aad: bytes = b"",
    *,
    backend: str | None = None,
    tag_length: int = TAG_SIZE,
) -> bytes:
    """``ciphertext || tag`` of one message. **Dangerous**: never reuse ``nonce`` under ``key``."""
    _check_nonce(nonce, backend)
    cipher = _cipher(key, backend, tag_length)
    out = bytearray(len(plaintext) + tag_length)
    cipher.seal_into(bytes(nonce), bytes(aad), memoryview(plaintext), memoryview(out))
    return bytes(out)


def decrypt(
    key: bytes,
    nonce: bytes,
    ciphertext: bytes,
    aad: bytes = b"",
    *,
    backend: str | None = None,
    tag_length: int = TAG_SIZE,
) -> bytes:
    """Plaintext of ``ciphertext || tag``; raises :class:`~cchet.IntegrityError` when the tag fails."""
    _check_nonce(nonce, backend)
    if len(ciphertext) < tag_length:
        raise IntegrityError()
    cipher = _cipher(key, backend, tag_length)
    out = bytearray(len(ciphertext) - tag_length)
    if not cipher.open_into(bytes(nonce), bytes(aad), memoryview(ciphertext), memoryview(out)):
        out[:] = bytes(len(out))
        raise IntegrityError()
    return bytes(out)
