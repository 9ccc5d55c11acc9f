"""The CUDA kernel's AES-256-GCM, step for step, in vectorised numpy: the oracle for the device tests.

Same decomposition as ``kernels/aes_gcm.cu`` (see :mod:`cchet.gpu.geometry`):

1. CTR: block ``j`` of chunk ``i`` is ``M_j xor AES_K(nonce_i || BE32(j + 2))`` with
   ``nonce_i = prefix || BE32(i) || last`` (DESIGN.md section 3).
2. GHASH partial sums: thread ``t`` of segment ``g`` runs Horner with ``H^lanes`` over its blocks
   ``t, t + lanes, ...``; its sum is multiplied by ``H^(lanes - 1 - t)`` and the block XORs its threads'
   sums into ``P_g`` (no multiplication in the block reduction).
3. Finish, one per chunk: ``Q = Horner(P_0 .. P_{G-1}; H^segment_blocks)``, then
   ``GHASH = A . H^(m + 2) xor Q . H^2 xor L . H`` where ``A`` is the AAD's Horner sum, ``m`` the
   chunk's block count and ``L`` the length block; ``tag = GHASH xor AES_K(nonce || 1)``.

:class:`Trace` exposes every intermediate so the device tests can compare the kernel's with these.
This module is slow (numpy, not constant time) and is meant for tests, the fake device and small data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cchet.crypto import format as fmt
from cchet.crypto.oneshot import open_header
from cchet.errors import IntegrityError
from cchet.gpu import aes256, gf128
from cchet.gpu import schedule as sched
from cchet.gpu.geometry import DEFAULT_LANES, DEFAULT_TARGET_BLOCKS, Geometry, plan
from cchet.gpu.schedule import StreamSchedule
from cchet.hazmat.keys import DataKey

__all__ = [
    "Trace",
    "chunk_nonces",
    "gcm_decrypt",
    "gcm_encrypt",
    "open_batch",
    "open_stream",
    "seal_batch",
    "seal_stream",
]

U32 = npt.NDArray[np.uint32]
U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class Trace:
    """Intermediates of one launch over ``n`` chunks (``M`` = the most blocks in a chunk).

    ``counter_blocks``, ``keystream`` and ``ghash_input`` are ``(n, M, 4)`` (zero past a chunk's end);
    ``lane_sums`` ``(n, G, lanes, 4)`` are each thread's Horner sum times its lane power;
    ``partial_sums`` ``(n, G, 4)``; ``segments`` and ``pads`` ``(n,)``; ``ghash``, ``ek_j0`` ``(n, 4)``;
    ``tags`` ``(n, 16)`` bytes. Field elements are big-endian words (:mod:`cchet.gpu.gf128`).
    """

    counter_blocks: U32
    keystream: U32
    ghash_input: U32
    lane_sums: U32
    partial_sums: U32
    segments: npt.NDArray[np.int64]
    pads: npt.NDArray[np.int64]
    ghash: U32
    ek_j0: U32
    tags: U8


def chunk_nonces(nonce_prefix: bytes, first_index: int, count: int, last_index: int) -> U32:
    """Nonce words ``(count, 3)`` of chunks ``first_index ..``; chunk ``last_index`` (-1: none) is last."""
    idx = np.arange(first_index, first_index + count, dtype=np.uint64)
    p = np.frombuffer(nonce_prefix + b"\x00", dtype=">u4").astype(np.uint64)
    out = np.empty((count, 3), dtype=np.uint32)
    out[:, 0] = p[0]
    out[:, 1] = p[1] | (idx >> np.uint64(24))
    out[:, 2] = ((idx & np.uint64(0xFFFFFF)) << np.uint64(8)) | (idx == last_index)
    return out


def _core(
    schedule: StreamSchedule, nonces: U32, lengths: npt.NDArray[np.int64], data: U8, aad: bytes, *, seal: bool
) -> tuple[U8, Trace]:
    """Run the kernel's algorithm; ``data`` is ``(n, 16 * M)`` bytes, zero past each chunk's length."""
    g: Geometry = schedule.geometry
    rk = schedule.round_keys
    n = len(lengths)
    m = (lengths + 15) // 16
    mmax = int(m.max()) if n else 0
    words = data.view(">u4").astype(np.uint32).reshape(n, mmax, 4)
    valid = np.arange(mmax)[None, :] < m[:, None]

    counter = np.empty((n, mmax, 4), dtype=np.uint32)
    counter[..., :3] = nonces[:, None, :]
    counter[..., 3] = np.arange(2, mmax + 2, dtype=np.uint32)[None, :]
    counter[~valid] = 0
    keystream = aes256.encrypt_blocks(rk, counter)
    keystream[~valid] = 0

    out_bytes = (words ^ keystream).astype(">u4").view(np.uint8).reshape(n, 16 * mmax)
    out_bytes = np.where(np.arange(16 * mmax)[None, :] < lengths[:, None], out_bytes, 0).astype(np.uint8)
    ghash_in = out_bytes.view(">u4").astype(np.uint32).reshape(n, mmax, 4) if seal else words

    s, lanes = g.segment_blocks, g.lanes
    segments = -(-m // s)
    pads = segments * s - m
    gmax = max(int(segments.max()) if n else 0, 1)
    virtual = np.zeros((n, gmax * s, 4), dtype=np.uint32)
    rows, cols = np.nonzero(valid)
    virtual[rows, cols + pads[rows]] = ghash_in[rows, cols]
    virtual = virtual.reshape(n, gmax, g.steps, lanes, 4)

    h_lanes = schedule.field(sched.HLANES)
    acc = np.zeros((n, gmax, lanes, 4), dtype=np.uint32)
    for k in range(g.steps):
        acc = gf128.mul(acc, h_lanes) ^ virtual[:, :, k]
    lane_sums = gf128.mul(acc, schedule.lane_powers)
    partial = np.bitwise_xor.reduce(lane_sums, axis=2)

    h_seg = schedule.field(sched.HSEG)
    q = np.zeros((n, 4), dtype=np.uint32)
    for gi in range(gmax):
        q = np.where((gi < segments)[:, None], gf128.mul(q, h_seg) ^ partial[:, gi], q)

    h = schedule.h
    a = np.zeros(4, dtype=np.uint32)
    for blk in gf128.from_bytes(aad + bytes(-len(aad) % 16)):
        a = gf128.mul(a, h) ^ blk
    exponent = m + 2
    h_m = np.broadcast_to(gf128.ONE, (n, 4)).copy()
    for i, p in enumerate(schedule.pow2):
        bit = ((exponent >> i) & 1).astype(bool)
        if bit.any():  # the exponent is public; skip powers no chunk uses
            h_m = np.where(bit[:, None], gf128.mul(h_m, p), h_m)
    bits = lengths.astype(np.uint64) * np.uint64(8)
    length_block = np.zeros((n, 4), dtype=np.uint32)
    length_block[:, 0] = (len(aad) * 8) >> 32
    length_block[:, 1] = (len(aad) * 8) & 0xFFFFFFFF
    length_block[:, 2] = bits >> np.uint64(32)
    length_block[:, 3] = bits & np.uint64(0xFFFFFFFF)
    ghash = gf128.mul(a, h_m) ^ gf128.mul(q, schedule.field(sched.H2)) ^ gf128.mul(length_block, h)

    j0 = np.empty((n, 4), dtype=np.uint32)
    j0[:, :3] = nonces
    j0[:, 3] = 1
    ek_j0 = aes256.encrypt_blocks(rk, j0)
    tags = (ghash ^ ek_j0).astype(">u4").view(np.uint8).reshape(n, 16)
    trace = Trace(counter, keystream, ghash_in, lane_sums, partial, segments, pads, ghash, ek_j0, tags)
    return out_bytes, trace


def _chunk_lengths(total: int, chunk_size: int, count: int) -> npt.NDArray[np.int64]:
    lengths = np.full(count, chunk_size, dtype=np.int64)
    lengths[-1] = total - (count - 1) * chunk_size
    return lengths


def _pad_rows(src: U8, starts: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]) -> U8:
    width = int(-(-int(lengths.max()) // 16) * 16) if len(lengths) else 0
    out = np.zeros((len(lengths), width), dtype=np.uint8)
    for i, (s, n) in enumerate(zip(starts, lengths, strict=True)):
        out[i, :n] = src[s : s + n]
    return out


def _as_u8(data: object) -> U8:
    return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)  # type: ignore[arg-type]


def seal_batch(
    schedule: StreamSchedule, plaintext: object, chunk_size: int, first_index: int, *, final: bool
) -> tuple[bytes, Trace]:
    """Seal whole chunks ``first_index ..`` of ``plaintext`` (only a final batch may end short).

    Returns the sealed chunks (``ciphertext || tag`` each) and the trace.
    """
    src = _as_u8(plaintext)
    count = fmt.chunk_count(len(src), chunk_size)
    if not final and len(src) % chunk_size:
        raise ValueError("only the final batch may hold a partial chunk")
    lengths = _chunk_lengths(len(src), chunk_size, count)
    last = first_index + count - 1 if final else -1
    nonces = chunk_nonces(schedule.field(sched.PREFIX, 2).astype(">u4").tobytes()[:7], first_index, count, last)
    data = _pad_rows(src, np.arange(count, dtype=np.int64) * chunk_size, lengths)
    aad = schedule.field(sched.AAD, 8).astype(">u4").tobytes()
    out, trace = _core(schedule, nonces, lengths, data, aad, seal=True)
    body = bytearray()
    for i, n in enumerate(lengths):
        body += out[i, :n].tobytes() + trace.tags[i].tobytes()
    return bytes(body), trace


def open_batch(
    schedule: StreamSchedule, sealed: object, chunk_size: int, first_index: int, *, final: bool
) -> tuple[bytes, npt.NDArray[np.bool_], Trace]:
    """Open sealed chunks; returns ``(plaintext, verdicts, trace)``. A failed chunk's plaintext is zeros."""
    src = _as_u8(sealed)
    step = chunk_size + fmt.TAG_SIZE
    count = max(1, -(-len(src) // step))
    lengths = _chunk_lengths(len(src) - count * fmt.TAG_SIZE, chunk_size, count)
    if (lengths < 0).any():
        raise ValueError("sealed batch is shorter than its tags")
    last = first_index + count - 1 if final else -1
    nonces = chunk_nonces(schedule.field(sched.PREFIX, 2).astype(">u4").tobytes()[:7], first_index, count, last)
    starts = np.arange(count, dtype=np.int64) * step
    data = _pad_rows(src, starts, lengths)
    aad = schedule.field(sched.AAD, 8).astype(">u4").tobytes()
    out, trace = _core(schedule, nonces, lengths, data, aad, seal=False)
    stored = np.stack([src[s + n : s + n + 16] for s, n in zip(starts, lengths, strict=True)])
    verdicts = (stored == trace.tags).all(axis=1)
    out[~verdicts] = 0
    plain = b"".join(out[i, :n].tobytes() for i, n in enumerate(lengths))
    return plain, verdicts, trace


def seal_stream(
    key: DataKey,
    header: fmt.Header,
    context: bytes,
    plaintext: object,
    *,
    lanes: int = DEFAULT_LANES,
    target_blocks: int = DEFAULT_TARGET_BLOCKS,
) -> bytes:
    """A whole sealed stream (header and body) under an explicit ``header``: byte-identical to
    :func:`cchet.crypto.oneshot.seal_stream_into` with the same header."""
    src = _as_u8(plaintext)
    if header.plaintext_length is not None and header.plaintext_length != len(src):
        raise ValueError("header.plaintext_length does not match the plaintext")
    count = fmt.chunk_count(len(src), header.chunk_size)
    geometry = plan(count, header.chunk_size, lanes=lanes, target_blocks=target_blocks)
    schedule = StreamSchedule.for_stream(key, header, context, geometry)
    body, _ = seal_batch(schedule, src, header.chunk_size, 0, final=True)
    return header.pack() + body


def open_stream(
    key: DataKey,
    blob: object,
    context: bytes,
    *,
    lanes: int = DEFAULT_LANES,
    target_blocks: int = DEFAULT_TARGET_BLOCKS,
) -> bytes:
    """Open a whole sealed stream; :class:`~cchet.IntegrityError` (or ``SealedFormatError``) on failure."""
    src = _as_u8(blob)
    header = open_header(key, memoryview(src.data))
    layout = fmt.body_layout(header, len(src) - fmt.HEADER_SIZE)
    geometry = plan(layout.n_chunks, header.chunk_size, lanes=lanes, target_blocks=target_blocks)
    schedule = StreamSchedule.for_stream(key, header, context, geometry)
    plain, verdicts, _ = open_batch(schedule, src[fmt.HEADER_SIZE :], header.chunk_size, 0, final=True)
    if not verdicts.all():
        raise IntegrityError()
    return plain


def _message(
    key: bytes, nonce: bytes, aad: bytes, data: bytes, *, lanes: int, segment_blocks: int | None, seal: bool
) -> tuple[bytes, bytes]:
    if len(nonce) != 12:
        raise ValueError(f"the kernel's GCM takes 12-byte nonces, got {len(nonce)}")
    blocks = max(1, -(-len(data) // 16))
    seg = segment_blocks or -(-blocks // lanes) * lanes
    geometry = Geometry(lanes=lanes, segment_blocks=seg, segments=-(-blocks // seg))
    schedule = StreamSchedule.build(key, bytes(7), bytes(32), geometry)
    nonces = np.frombuffer(nonce, dtype=">u4").astype(np.uint32).reshape(1, 3)
    lengths = np.array([len(data)], dtype=np.int64)
    row = np.zeros((1, -(-len(data) // 16) * 16), dtype=np.uint8)
    row[0, : len(data)] = np.frombuffer(data, dtype=np.uint8)
    out, trace = _core(schedule, nonces, lengths, row, aad, seal=seal)
    return out[0, : len(data)].tobytes(), trace.tags[0].tobytes()


def gcm_encrypt(
    key: bytes,
    nonce: bytes,
    aad: bytes,
    plaintext: bytes,
    *,
    lanes: int = DEFAULT_LANES,
    segment_blocks: int | None = None,
) -> bytes:
    """One AES-256-GCM message with a 12-byte nonce and any AAD, through the kernel's decomposition:
    ``ciphertext || tag``. For known-answer tests; the stream never calls it."""
    ct, tag = _message(key, nonce, aad, plaintext, lanes=lanes, segment_blocks=segment_blocks, seal=True)
    return ct + tag


def gcm_decrypt(
    key: bytes,
    nonce: bytes,
    aad: bytes,
    sealed: bytes,
    *,
    tag_length: int = 16,
    lanes: int = DEFAULT_LANES,
    segment_blocks: int | None = None,
) -> bytes:
    """Inverse of :func:`gcm_encrypt`, accepting a tag truncated to ``tag_length`` bytes (NIST vectors).

    Raises :class:`~cchet.IntegrityError` when the tag does not match.
    """
    if len(sealed) < tag_length:
        raise IntegrityError()
    ct, tag = sealed[:-tag_length], sealed[-tag_length:]
    pt, expected = _message(key, nonce, aad, ct, lanes=lanes, segment_blocks=segment_blocks, seal=False)
    if expected[:tag_length] != tag:
        raise IntegrityError()
    return pt
