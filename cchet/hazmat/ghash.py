"""GHASH, the universal hash inside GCM (NIST SP 800-38D, section 6.4), in plain Python.

.. warning::
   **Dangerous.** GHASH alone authenticates nothing: it is linear in its input and its key ``H`` must
   stay secret. This module exists for known-answer tests and for checking the GPU kernels; it is slow
   and not constant time.

Blocks are read big-endian with GCM's reflected bit order: bit 0 of the field element is the most
significant bit of the first byte.
"""

from __future__ import annotations

__all__ = ["R", "gf128_mul", "gf128_pow", "ghash", "ghash_blocks", "length_block"]

R = 0xE1 << 120  # x^128 + x^7 + x^2 + x + 1, reflected


def gf128_mul(x: int, y: int) -> int:
    """Product of two field elements given as 128-bit integers (first byte most significant)."""
    z = 0
    v = x
    for i in range(127, -1, -1):
        if (y >> i) & 1:
            z ^= v
        v = (v >> 1) ^ R if v & 1 else v >> 1
    return z


def gf128_pow(h: int, n: int) -> int:
    """``h`` to the power ``n >= 1`` in GCM's field."""
    if n < 1:
        raise ValueError(f"power must be >= 1, got {n}")
    result = h
    for _ in range(n - 1):
        result = gf128_mul(result, h)
    return result


def ghash_blocks(h: bytes, data: bytes) -> bytes:
    """GHASH_H over ``data``, which must be a whole number of 16-byte blocks (SP 800-38D Algorithm 2)."""
    if len(h) != 16:
        raise ValueError(f"H must be 16 bytes, got {len(h)}")
    if len(data) % 16:
        raise ValueError(f"GHASH input must be a multiple of 16 bytes, got {len(data)}")
    hk = int.from_bytes(h, "big")
    y = 0
    for off in range(0, len(data), 16):
        y = gf128_mul(y ^ int.from_bytes(data[off : off + 16], "big"), hk)
    return y.to_bytes(16, "big")


def length_block(aad_len: int, ciphertext_len: int) -> bytes:
    """GCM's final block: the bit lengths of the AAD and the ciphertext, 64 bits each, big-endian."""
    return (aad_len * 8).to_bytes(8, "big") + (ciphertext_len * 8).to_bytes(8, "big")


def ghash(h: bytes, aad: bytes, ciphertext: bytes) -> bytes:
    """GCM's ``GHASH_H(A, C)``: zero-padded AAD, zero-padded ciphertext, then the length block."""

    def padded(b: bytes) -> bytes:
        return bytes(b) + bytes(-len(b) % 16)

    return ghash_blocks(h, padded(aad) + padded(ciphertext) + length_block(len(aad), len(ciphertext)))
