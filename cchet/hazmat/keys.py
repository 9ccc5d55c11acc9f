"""Data-key handles, and the two dangerous doors in and out of them.

A :class:`DataKey` holds 32 bytes of AES-256 key material and a 16-byte public ``key_id``. The handle
refuses pickling (so a key cannot ride along in a Ray object or a log), hides its bytes in ``repr`` and
compares in constant time. The safe way to get one is :meth:`DataKey.generate` or the key broker.

.. warning::
   :func:`data_key_from_bytes` and :func:`data_key_bytes` move raw key bytes across the handle
   boundary. Once bytes are out, cchet can no longer keep them out of logs, pickles or swap.
"""

from __future__ import annotations

import hmac
import os
from typing import NoReturn

__all__ = ["KEY_ID_SIZE", "KEY_SIZE", "DataKey", "data_key_bytes", "data_key_from_bytes"]

KEY_SIZE = 32
KEY_ID_SIZE = 16


class DataKey:
    """A 256-bit data key with a 16-byte identifier.

    Guarantees: never pickled (``pickle.dumps`` raises ``TypeError``), never shown (``repr`` gives the
    key id only), compared in constant time. Limits: Python cannot wipe memory reliably, so the bytes
    live until the object is collected; do not copy them out (see :mod:`cchet.hazmat`).
    """

    __slots__ = ("__key", "_key_id")

    def __init__(self, _key: bytes, _key_id: bytes, *, _token: object = None) -> None:
        if _token is not _CONSTRUCT:
            raise TypeError(
                "DataKey is not built from bytes on the safe path: use DataKey.generate(), a key "
                "released by the broker, or cchet.hazmat.data_key_from_bytes() for interop"
            )
        self.__key = _key
        self._key_id = _key_id

    @classmethod
    def generate(cls) -> DataKey:
        """A fresh key and key id from the operating system's CSPRNG."""
        return cls(os.urandom(KEY_SIZE), os.urandom(KEY_ID_SIZE), _token=_CONSTRUCT)

    @property
    def key_id(self) -> bytes:
        """The public 16-byte identifier written into every sealed-stream header."""
        return self._key_id

    def __repr__(self) -> str:
        return f"DataKey(key_id={self._key_id.hex()})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DataKey):
            return NotImplemented
        same_key = hmac.compare_digest(self.__key, other.__key)
        return hmac.compare_digest(self._key_id, other._key_id) and same_key

    def __hash__(self) -> int:
        return hash(self._key_id)

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "DataKey refuses to be pickled: keys never travel in Ray objects or files in the clear; "
            "seal data with it instead, or let the key broker release it to an attested worker"
        )

    def __copy__(self) -> DataKey:
        return self

    def __deepcopy__(self, memo: object) -> DataKey:
        return self

    def _material(self) -> bytes:
        return self.__key


_CONSTRUCT = object()


def data_key_from_bytes(raw: bytes, key_id: bytes) -> DataKey:
    """Wrap existing key bytes in a handle. **Dangerous**: the caller is responsible for where ``raw`` came
    from and where else it lives.

    Raises ``TypeError`` for non-bytes arguments and ``ValueError`` unless ``raw`` is 32 bytes and
    ``key_id`` 16 bytes.
    """
    raw = _exact_bytes(raw, KEY_SIZE, "raw")
    key_id = _exact_bytes(key_id, KEY_ID_SIZE, "key_id")
    return DataKey(raw, key_id, _token=_CONSTRUCT)


def data_key_bytes(key: DataKey) -> bytes:
    """The 32 key bytes of ``key``. **Dangerous**: the bytes leave cchet's protection."""
    if not isinstance(key, DataKey):
        raise TypeError(f"expected a DataKey, got {type(key).__name__}")
    return key._material()


def _exact_bytes(value: object, size: int, name: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"{name} must be bytes, got {type(value).__name__}")
    value = bytes(value)
    if len(value) != size:
        raise ValueError(f"{name} must be exactly {size} bytes, got {len(value)}")
    return value
