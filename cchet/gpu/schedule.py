"""The per-stream key schedule the host hands to the kernel: one flat array of 32-bit words.

HKDF stays on the host (:func:`cchet.crypto.format.stream_key`); so does the AES-256 key expansion and
the powers of ``H = AES_K(0^128)`` the launch geometry needs. The layout below is mirrored by the
``CCHET_SCHED_*`` constants in ``kernels/aes_gcm.cuh``; a test keeps the two equal.

====================  ======================  ==========================================
word offset           words                   content
====================  ======================  ==========================================
``RK`` 0              60                      AES-256 round keys, big-endian words
``AAD`` 60            8                       chunk AAD, SHA-256(header || context)
``H1`` 68             4                       H
``H2`` 72             4                       H^2
``HLANES`` 76         4                       H^lanes (one Horner step of a thread)
``HSEG`` 80           4                       H^segment_blocks (one segment)
``PREFIX`` 84         2                       nonce prefix bytes 0..3, then 4..6 and a zero byte
``GEOM`` 86           2                       lanes, segment_blocks (checked by the kernel)
``POW2`` 88           4 * 24                  H^(2^i), i < 24 (public powers up to 2^24 - 1)
``LANEPOW`` 184       4 * lanes               H^(lanes - 1 - t) for thread t
====================  ======================  ==========================================

.. warning::
   The words are key material (round keys and H). They live in host memory and are copied to the
   device; on a GPU not in CC mode that copy crosses PCIe in the clear.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

import numpy as np
import numpy.typing as npt

from cchet.crypto import format as fmt
from cchet.gpu import aes256, gf128
from cchet.gpu.geometry import Geometry
from cchet.hazmat.keys import DataKey, data_key_bytes

__all__ = [
    "AAD",
    "GEOM",
    "H1",
    "H2",
    "HLANES",
    "HSEG",
    "LANEPOW",
    "POW2",
    "POW2_COUNT",
    "PREFIX",
    "RK",
    "StreamSchedule",
]

RK, AAD, H1, H2, HLANES, HSEG, PREFIX, GEOM, POW2 = 0, 60, 68, 72, 76, 80, 84, 86, 88
POW2_COUNT = 24
LANEPOW = POW2 + 4 * POW2_COUNT

U32 = npt.NDArray[np.uint32]


@dataclass(frozen=True, eq=False, slots=True)
class StreamSchedule:
    """The kernel's view of one stream under one geometry. ``words`` is what goes to the device."""

    words: U32
    geometry: Geometry

    def __repr__(self) -> str:
        g = self.geometry
        return f"StreamSchedule(lanes={g.lanes}, segment_blocks={g.segment_blocks}, <key material hidden>)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("StreamSchedule holds key material and refuses to be pickled")

    @classmethod
    def build(cls, key: bytes, nonce_prefix: bytes, aad: bytes, geometry: Geometry) -> StreamSchedule:
        """From a raw 32-byte AES key, the 7-byte nonce prefix and the 32-byte chunk AAD.

        Raises ``ValueError`` for other sizes.
        """
        if len(nonce_prefix) != fmt.NONCE_PREFIX_SIZE:
            raise ValueError(f"nonce prefix must be {fmt.NONCE_PREFIX_SIZE} bytes, got {len(nonce_prefix)}")
        if len(aad) != 32:
            raise ValueError(f"chunk AAD must be 32 bytes (a SHA-256), got {len(aad)}")
        rk = aes256.expand_key(key)
        h = aes256.encrypt_blocks(rk, np.zeros((1, 4), dtype=np.uint32))[0]
        lanes = geometry.lanes
        w = np.zeros(LANEPOW + 4 * lanes, dtype=np.uint32)
        w[RK : RK + 60] = rk
        w[AAD : AAD + 8] = np.frombuffer(aad, dtype=">u4")
        pow2 = gf128.pow2_table(h, POW2_COUNT)
        w[H1 : H1 + 4] = h
        w[H2 : H2 + 4] = pow2[1]
        w[HLANES : HLANES + 4] = gf128.power_from_table(pow2, lanes)
        w[HSEG : HSEG + 4] = gf128.power_from_table(pow2, geometry.segment_blocks)
        w[PREFIX : PREFIX + 2] = np.frombuffer(nonce_prefix + b"\x00", dtype=">u4")
        w[GEOM : GEOM + 2] = (lanes, geometry.segment_blocks)
        w[POW2 : POW2 + 4 * POW2_COUNT] = pow2.reshape(-1)
        w[LANEPOW:] = gf128.powers(h, lanes)[::-1].reshape(-1)
        w.setflags(write=False)
        return cls(words=w, geometry=geometry)

    @classmethod
    def for_stream(cls, key: DataKey, header: fmt.Header, context: bytes, geometry: Geometry) -> StreamSchedule:
        """The schedule of a sealed stream: HKDF stream key, the header's prefix, its chunk AAD."""
        stream_key = fmt.stream_key(data_key_bytes(key), header)
        aad = fmt.chunk_aad(header.pack(), bytes(context))
        return cls.build(stream_key, header.nonce_prefix, aad, geometry)

    def field(self, offset: int, count: int = 4) -> U32:
        """``count`` words at ``offset`` (one field element by default)."""
        return self.words[offset : offset + count]

    @property
    def round_keys(self) -> U32:
        return self.words[RK : RK + 60]

    @property
    def h(self) -> U32:
        return self.field(H1)

    @property
    def lane_powers(self) -> U32:
        """``H^(lanes - 1 - t)`` for each thread ``t``, shape ``(lanes, 4)``."""
        return self.words[LANEPOW:].reshape(-1, 4)

    @property
    def pow2(self) -> U32:
        return self.words[POW2 : POW2 + 4 * POW2_COUNT].reshape(-1, 4)
