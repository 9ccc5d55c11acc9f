"""Sealed streams (format v1): seal and open data under a :class:`~cchet.DataKey`, in parallel.

No Ray, no GPU. The format is in :mod:`cchet.crypto.format` (and ``docs/format.md``); the framing
that every AEAD backend shares is :mod:`cchet.crypto.engine`.
"""

from cchet.crypto.format import sealed_size
from cchet.crypto.oneshot import seal, seal_into, unseal, unseal_into
from cchet.crypto.stream import SealWriter, UnsealReader
from cchet.hazmat.keys import DataKey

__all__ = [
    "DataKey",
    "SealWriter",
    "UnsealReader",
    "seal",
    "seal_into",
    "sealed_size",
    "unseal",
    "unseal_into",
]
