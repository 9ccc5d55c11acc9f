"""GCM's field GF(2^128) the way the CUDA kernel multiplies in it, in vectorised numpy.

An element is four big-endian 32-bit words (``shape (..., 4)``, ``uint32``): the 16-byte block read as
a big-endian integer, so GCM's bit 0 (the coefficient of x^0) is the integer's most significant bit
(NIST SP 800-38D section 6.3).

The multiplication uses no table, so it has no secret-dependent memory access:

1. ``clmul32``: a 32 x 32 -> 64-bit carry-less product from sixteen ordinary integer products of
   operands masked to every fourth bit. Each product column collects at most 8 one-bits, which fit in
   the 4-bit gap before the next column of the same residue, so integer carries never reach a bit that
   is kept (the kernel uses one ``IMAD.WIDE.U32`` per product).
2. Karatsuba twice: 64 x 64 from three ``clmul32``, 128 x 128 from three 64 x 64 (nine in all).
3. The 255-bit product of the integers is the field product shifted right by one; shift it back, then
   fold the high 128 bits down with x^128 = x^7 + x^2 + x + 1, twice (the second fold takes the at
   most 7 bits that the first pushed past degree 127).

.. warning::
   Reference code for tests and for the host-side key schedule. GHASH alone authenticates nothing.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "ONE",
    "clmul32",
    "clmul64",
    "from_bytes",
    "from_int",
    "mul",
    "pow2_table",
    "power",
    "power_from_table",
    "powers",
    "to_bytes",
    "to_int",
]

U32 = npt.NDArray[np.uint32]
U64 = npt.NDArray[np.uint64]

_M = [np.uint64(0x1111111111111111 << r & 0xFFFFFFFFFFFFFFFF) for r in range(4)]
_LO32 = np.uint64(0xFFFFFFFF)
_32 = np.uint64(32)
_1 = np.uint64(1)

ONE = np.array([0x80000000, 0, 0, 0], dtype=np.uint32)  # x^0


_MASKS = np.array(_M, dtype=np.uint64)
# For residue r, the four (a, b) operand classes with a + b = r (mod 4).
_PAIRS_A = np.array([[a for a in range(4)] for r in range(4)])
_PAIRS_B = np.array([[(r - a) % 4 for a in range(4)] for r in range(4)])


def clmul32(x: U64, y: U64) -> U64:
    """Carry-less product of two arrays of 32-bit values (held in uint64), 64-bit results."""
    x, y = np.broadcast_arrays(x, y)
    extra = (1,) * x.ndim
    xs = x[None] & _MASKS.reshape(4, *extra)
    ys = y[None] & _MASKS.reshape(4, *extra)
    products = xs[_PAIRS_A] * ys[_PAIRS_B]  # (residue, a, ...): sixteen integer products
    z = np.bitwise_xor.reduce(products, axis=1) & _MASKS.reshape(4, *extra)
    out: U64 = np.bitwise_or.reduce(z, axis=0)
    return out


def _karatsuba_operands(x: U64) -> U64:
    """``(low, high, low ^ high)`` halves of 64-bit values, stacked on a new first axis."""
    lo, hi = x & _LO32, x >> _32
    return np.stack([lo, hi, lo ^ hi])


def clmul64(x: U64, y: U64) -> tuple[U64, U64]:
    """Carry-less 64 x 64 -> 128-bit product by Karatsuba over ``clmul32``: ``(high, low)`` words."""
    p = clmul32(_karatsuba_operands(x), _karatsuba_operands(y))
    return _combine64(p)


def _combine64(p: U64) -> tuple[U64, U64]:
    lo, hi = p[0], p[1]
    mid = p[2] ^ lo ^ hi
    return hi ^ (mid >> _32), lo ^ (mid << _32)


def _halves(a: U32) -> tuple[U64, U64]:
    w = a.astype(np.uint64)
    return (w[..., 0] << _32) | w[..., 1], (w[..., 2] << _32) | w[..., 3]


def mul(a: U32, b: U32) -> U32:
    """Field product of two arrays of elements, broadcasting like numpy.

    The nine ``clmul32`` products of the two Karatsuba levels are computed in one vectorised call.
    """
    a1, a0, b1, b0 = np.broadcast_arrays(*_halves(a), *_halves(b))
    a64 = np.stack([a0, a1, a0 ^ a1])
    b64 = np.stack([b0, b1, b0 ^ b1])
    ops_a = np.moveaxis(_karatsuba_operands(a64), 0, 1)  # (64-bit operand, 32-bit operand, ...)
    ops_b = np.moveaxis(_karatsuba_operands(b64), 0, 1)
    p = clmul32(ops_a, ops_b)
    (l1, l0), (h1, h0), (m1, m0) = (_combine64(p[i]) for i in range(3))
    m1, m0 = m1 ^ l1 ^ h1, m0 ^ l0 ^ h0
    # 256-bit integer product, most significant limb first.
    p3, p2, p1, p0 = h1, h0 ^ m1, l1 ^ m0, l0
    # Shift left by one: the integer product is the field product divided by x.
    p3 = (p3 << _1) | (p2 >> np.uint64(63))
    p2 = (p2 << _1) | (p1 >> np.uint64(63))
    p1 = (p1 << _1) | (p0 >> np.uint64(63))
    p0 = p0 << _1
    # Fold: low half (degrees 128..255) times x^7 + x^2 + x + 1. Multiplying by x^j is >> j here.
    e1 = (p0 << np.uint64(63)) ^ (p0 << np.uint64(62)) ^ (p0 << np.uint64(57))
    r1 = p1 ^ (p1 >> _1) ^ (p1 >> np.uint64(2)) ^ (p1 >> np.uint64(7))
    r0 = p0 ^ (p0 >> _1) ^ (p0 >> np.uint64(2)) ^ (p0 >> np.uint64(7))
    r0 ^= (p1 << np.uint64(63)) ^ (p1 << np.uint64(62)) ^ (p1 << np.uint64(57))
    # Bits pushed past degree 127 (the spill e1 of the low limb) fold once more.
    r1 ^= e1 ^ (e1 >> _1) ^ (e1 >> np.uint64(2)) ^ (e1 >> np.uint64(7))
    r0 ^= (e1 << np.uint64(63)) ^ (e1 << np.uint64(62)) ^ (e1 << np.uint64(57))
    hi, lo = p3 ^ r1, p2 ^ r0
    out = np.empty((*hi.shape, 4), dtype=np.uint32)
    out[..., 0] = hi >> _32
    out[..., 1] = hi & _LO32
    out[..., 2] = lo >> _32
    out[..., 3] = lo & _LO32
    return out


def from_bytes(data: bytes) -> U32:
    """Blocks of ``data`` (a multiple of 16 bytes) as elements, shape ``(len // 16, 4)``."""
    if len(data) % 16:
        raise ValueError(f"field elements are 16-byte blocks, got {len(data)} bytes")
    return np.frombuffer(data, dtype=">u4").astype(np.uint32).reshape(-1, 4)


def to_bytes(a: U32) -> bytes:
    """The 16-byte blocks of elements, in order."""
    return np.ascontiguousarray(a, dtype=">u4").tobytes()


def to_int(a: U32) -> int:
    """One element as the 128-bit integer of :mod:`cchet.hazmat.ghash`."""
    return int.from_bytes(to_bytes(a.reshape(4)), "big")


def from_int(x: int) -> U32:
    """The element of a 128-bit integer."""
    out: U32 = from_bytes(x.to_bytes(16, "big"))[0]
    return out


def powers(h: U32, count: int) -> U32:
    """``H^0 .. H^(count-1)``, shape ``(count, 4)``, by doubling the run computed so far."""
    out = np.empty((max(count, 1), 4), dtype=np.uint32)
    out[0] = ONE
    done = 1
    while done < count:
        step = mul(out[done - 1], h.reshape(4))  # H^done
        take = min(done, count - done)
        out[done : done + take] = mul(out[:take], step)
        done += take
    return out[:count]


def power(h: U32, n: int) -> U32:
    """``H^n`` for a public ``n >= 0`` by square and multiply."""
    if n < 0:
        raise ValueError(f"power must be >= 0, got {n}")
    result = ONE.copy()
    base = h.reshape(4)
    while n:
        if n & 1:
            result = mul(result, base)
        base = mul(base, base)
        n >>= 1
    return result


def power_from_table(pow2: U32, n: int) -> U32:
    """``H^n`` from the table ``H^(2^i)`` (:func:`pow2_table`): one product per set bit of public ``n``."""
    if not 0 <= n < 1 << len(pow2):
        raise ValueError(f"power {n} is outside 0..2^{len(pow2)}-1")
    result = ONE.copy()
    for i in range(n.bit_length()):
        if n >> i & 1:
            result = mul(result, pow2[i])
    return result


def pow2_table(h: U32, count: int) -> U32:
    """``H^(2^i)`` for ``i < count``, shape ``(count, 4)``: the kernel raises H to public powers with it."""
    out = np.empty((count, 4), dtype=np.uint32)
    cur = h.reshape(4)
    for i in range(count):
        out[i] = cur
        cur = mul(cur, cur)
    return out
