"""AES-256 the way the CUDA kernel computes it, in vectorised numpy (FIPS-197).

The S-box is computed from its definition (multiplicative inverse in GF(2^8), then the affine map of
FIPS-197 section 5.1.1), never typed in; the kernel builds the same table in each thread block's
prologue. Rounds use one 32-bit table ``T0[x] = (2.S[x], S[x], S[x], 3.S[x])`` and byte rotations of it
for the other three columns; the last round reads the S-box out of byte 1 of ``T0``.

.. warning::
   Table lookups indexed by secret state leak through cache and shared-memory timing. This numpy copy
   is a reference for tests and is not constant time; the kernel replicates the table once per lane
   (``docs/gpu.md``) so no lookup can conflict with another lane's.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt

__all__ = ["ROUNDS", "expand_key", "encrypt_blocks", "sbox", "t0_table"]

ROUNDS = 14
U32 = npt.NDArray[np.uint32]


def _gf8_mul(a: int, b: int) -> int:
    """Product in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1 (FIPS-197 section 4.2)."""
    p = 0
    for _ in range(8):
        if b & 1:
            p ^= a
        a = ((a << 1) ^ 0x1B) & 0xFF if a & 0x80 else a << 1
        b >>= 1
    return p


def _gf8_inverse(x: int) -> int:
    """``x^254`` (the inverse of a non-zero ``x``; 0 maps to 0), as the kernel computes it."""
    result, base, e = 1, x, 254
    while e:
        if e & 1:
            result = _gf8_mul(result, base)
        base = _gf8_mul(base, base)
        e >>= 1
    return result


def _rotl8(x: int, n: int) -> int:
    return ((x << n) | (x >> (8 - n))) & 0xFF


@cache
def _sbox() -> tuple[int, ...]:
    out = []
    for x in range(256):
        b = _gf8_inverse(x)
        out.append(b ^ _rotl8(b, 1) ^ _rotl8(b, 2) ^ _rotl8(b, 3) ^ _rotl8(b, 4) ^ 0x63)
    return tuple(out)


def sbox() -> npt.NDArray[np.uint8]:
    """The AES S-box, computed from its definition."""
    return np.array(_sbox(), dtype=np.uint8)


@cache
def _t0() -> tuple[int, ...]:
    return tuple((_gf8_mul(s, 2) << 24) | (s << 16) | (s << 8) | _gf8_mul(s, 3) for s in _sbox())


def t0_table() -> U32:
    """``T0[x] = (2.S[x] << 24) | (S[x] << 16) | (S[x] << 8) | 3.S[x]``."""
    return np.array(_t0(), dtype=np.uint32)


def _sub_word(w: int) -> int:
    s = _sbox()
    return (s[w >> 24] << 24) | (s[(w >> 16) & 0xFF] << 16) | (s[(w >> 8) & 0xFF] << 8) | s[w & 0xFF]


def expand_key(key: bytes) -> U32:
    """The 60 round-key words of AES-256 (FIPS-197 section 5.2), big-endian words.

    Raises ``ValueError`` unless ``key`` is 32 bytes.
    """
    if len(key) != 32:
        raise ValueError(f"AES-256 needs a 32-byte key, got {len(key)}")
    w = [int.from_bytes(key[4 * i : 4 * i + 4], "big") for i in range(8)]
    rcon = 1
    for i in range(8, 4 * (ROUNDS + 1)):
        t = w[i - 1]
        if i % 8 == 0:
            t = _sub_word(((t << 8) | (t >> 24)) & 0xFFFFFFFF) ^ (rcon << 24)
            rcon = _gf8_mul(rcon, 2)
        elif i % 8 == 4:
            t = _sub_word(t)
        w.append(w[i - 8] ^ t)
    return np.array(w, dtype=np.uint32)


def _rotr(x: U32, n: int) -> U32:
    return ((x >> np.uint32(n)) | (x << np.uint32(32 - n))).astype(np.uint32)


def encrypt_blocks(round_keys: U32, blocks: U32) -> U32:
    """Encrypt blocks given as big-endian words, shape ``(..., 4)``; returns the same shape.

    The round structure is the kernel's: 13 table rounds, then one S-box round, round keys XORed per
    column.
    """
    t0 = t0_table()
    s = [blocks[..., c] ^ round_keys[c] for c in range(4)]
    ff = np.uint32(0xFF)
    for r in range(1, ROUNDS):
        s = [
            t0[s[c] >> np.uint32(24)]
            ^ _rotr(t0[(s[(c + 1) % 4] >> np.uint32(16)) & ff], 8)
            ^ _rotr(t0[(s[(c + 2) % 4] >> np.uint32(8)) & ff], 16)
            ^ _rotr(t0[s[(c + 3) % 4] & ff], 24)
            ^ round_keys[4 * r + c]
            for c in range(4)
        ]
    sb = (t0 >> np.uint32(16)) & ff
    out = [
        (sb[s[c] >> np.uint32(24)] << np.uint32(24))
        | (sb[(s[(c + 1) % 4] >> np.uint32(16)) & ff] << np.uint32(16))
        | (sb[(s[(c + 2) % 4] >> np.uint32(8)) & ff] << np.uint32(8))
        | sb[s[(c + 3) % 4] & ff]
        for c in range(4)
    ]
    return np.stack([o ^ round_keys[4 * ROUNDS + c] for c, o in enumerate(out)], axis=-1).astype(np.uint32)
