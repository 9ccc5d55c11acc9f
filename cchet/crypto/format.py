"""Sealed-stream format v1: the header, the key schedule, nonces, AAD and sizes (DESIGN.md section 3).

Everything here is pure computation on public values plus the one HKDF call; the chunk crypto lives in
:mod:`cchet.crypto.engine`. ``MAX_STREAM_BYTES`` is read at call time, so tests may lower it.

Header (72 bytes, integers big-endian)::

    magic "CCH1" | version 1 | suite 1 | chunk_log2 | flags 0 | key_id 16 | salt 32 | nonce_prefix 7
    | reserved 0 | plaintext_length u64 (2**64-1 = unknown)
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

from cchet.errors import SealedFormatError

__all__ = [
    "DEFAULT_CHUNK_LOG2",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_CHUNK_LOG2",
    "MAX_STREAM_BYTES",
    "MIN_CHUNK_LOG2",
    "SUITE_AES256GCM_HKDF_SHA256",
    "TAG_SIZE",
    "UNKNOWN_LENGTH",
    "VERSION",
    "BodyLayout",
    "Header",
    "body_layout",
    "check_chunk_size",
    "chunk_aad",
    "chunk_count",
    "chunk_log2_of",
    "chunk_nonce",
    "sealed_size",
    "stream_key",
]

MAGIC = b"CCH1"
VERSION = 1
SUITE_AES256GCM_HKDF_SHA256 = 1
HEADER_SIZE = 72
TAG_SIZE = 16
MIN_CHUNK_LOG2 = 12
MAX_CHUNK_LOG2 = 26
DEFAULT_CHUNK_LOG2 = 20
UNKNOWN_LENGTH = 2**64 - 1
MAX_STREAM_BYTES = 2**36
STREAM_INFO = b"cchet/v1/stream"
SALT_SIZE = 32
NONCE_PREFIX_SIZE = 7

_HEADER = struct.Struct(">4sBBBB16s32s7sBQ")
assert _HEADER.size == HEADER_SIZE


@dataclass(frozen=True, slots=True)
class Header:
    """A parsed (or to-be-written) stream header. ``plaintext_length`` is None when unknown."""

    chunk_log2: int
    key_id: bytes
    salt: bytes
    nonce_prefix: bytes
    plaintext_length: int | None
    version: int = VERSION
    suite: int = SUITE_AES256GCM_HKDF_SHA256
    flags: int = 0
    reserved: int = 0

    @property
    def chunk_size(self) -> int:
        return 1 << self.chunk_log2

    def pack(self) -> bytes:
        """The 72 header bytes exactly as stored."""
        length = UNKNOWN_LENGTH if self.plaintext_length is None else self.plaintext_length
        return _HEADER.pack(
            MAGIC,
            self.version,
            self.suite,
            self.chunk_log2,
            self.flags,
            self.key_id,
            self.salt,
            self.nonce_prefix,
            self.reserved,
            length,
        )

    @classmethod
    def parse(cls, data: bytes | memoryview) -> Header:
        """Parse and check a header; raises :class:`~cchet.SealedFormatError` naming the bad field.

        Checks, in order: size, magic, version, suite, flags, reserved, chunk_log2, and
        ``plaintext_length <= MAX_STREAM_BYTES`` unless unknown. The key id is checked by the caller
        against its key.
        """
        if len(data) < HEADER_SIZE:
            raise SealedFormatError(
                "header", f"needs {HEADER_SIZE} bytes, got {len(data)} (truncated or not a sealed stream)"
            )
        magic, version, suite, log2, flags, key_id, salt, prefix, reserved, length = _HEADER.unpack(
            bytes(data[:HEADER_SIZE])
        )
        if magic != MAGIC:
            raise SealedFormatError("magic", f"expected {MAGIC!r}, got {magic!r}: not a cchet sealed stream")
        if version != VERSION:
            raise SealedFormatError("version", f"unsupported version {version}; this cchet reads {VERSION}")
        if suite != SUITE_AES256GCM_HKDF_SHA256:
            raise SealedFormatError("suite", f"unknown suite {suite}; this cchet knows suite 1 (AES-256-GCM)")
        if flags != 0:
            raise SealedFormatError("flags", f"reserved flags must be 0, got {flags:#04x}")
        if reserved != 0:
            raise SealedFormatError("reserved", f"reserved byte must be 0, got {reserved:#04x}")
        if not MIN_CHUNK_LOG2 <= log2 <= MAX_CHUNK_LOG2:
            raise SealedFormatError("chunk_log2", f"{log2} is outside {MIN_CHUNK_LOG2}..{MAX_CHUNK_LOG2}")
        if length != UNKNOWN_LENGTH and length > MAX_STREAM_BYTES:
            raise SealedFormatError(
                "plaintext_length", f"{length} exceeds the per-stream limit of {MAX_STREAM_BYTES} bytes"
            )
        return cls(
            chunk_log2=log2,
            key_id=key_id,
            salt=salt,
            nonce_prefix=prefix,
            plaintext_length=None if length == UNKNOWN_LENGTH else length,
            version=version,
            suite=suite,
            flags=flags,
            reserved=reserved,
        )


def chunk_log2_of(chunk_size: int) -> int:
    """log2 of a valid chunk size; ``ValueError`` names the allowed range otherwise."""
    check_chunk_size(chunk_size)
    return chunk_size.bit_length() - 1


def check_chunk_size(chunk_size: int) -> None:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
        raise TypeError(f"chunk_size must be an int, got {type(chunk_size).__name__}")
    if chunk_size <= 0 or chunk_size & (chunk_size - 1):
        raise ValueError(f"chunk_size must be a power of two, got {chunk_size}")
    if not 1 << MIN_CHUNK_LOG2 <= chunk_size <= 1 << MAX_CHUNK_LOG2:
        raise ValueError(f"chunk_size {chunk_size} is outside 4 KiB..64 MiB (2**{MIN_CHUNK_LOG2}..2**{MAX_CHUNK_LOG2})")


def chunk_count(plaintext_length: int, chunk_size: int) -> int:
    """Chunks in a canonical stream: ``max(1, ceil(n / chunk_size))``."""
    return max(1, -(-plaintext_length // chunk_size))


def sealed_size(n: int, chunk_size: int = 1 << DEFAULT_CHUNK_LOG2) -> int:
    """Exact size of a sealed stream of ``n`` plaintext bytes: ``72 + n + 16 * max(1, ceil(n / chunk))``.

    Raises ``ValueError`` for a negative ``n``, an ``n`` over the per-stream limit, or a bad chunk size.
    """
    check_chunk_size(chunk_size)
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n > MAX_STREAM_BYTES:
        raise ValueError(f"{n} bytes exceeds the per-stream limit of {MAX_STREAM_BYTES} bytes")
    return HEADER_SIZE + n + TAG_SIZE * chunk_count(n, chunk_size)


@dataclass(frozen=True, slots=True)
class BodyLayout:
    """Where the chunks of a stream body lie: ``n_chunks`` chunks, all full but the last."""

    plaintext_length: int
    chunk_size: int

    @property
    def n_chunks(self) -> int:
        return chunk_count(self.plaintext_length, self.chunk_size)

    def chunk_plain_len(self, index: int) -> int:
        if index < self.n_chunks - 1:
            return self.chunk_size
        return self.plaintext_length - (self.n_chunks - 1) * self.chunk_size


def body_layout(header: Header, body_len: int) -> BodyLayout:
    """Check a body of ``body_len`` bytes against ``header`` before any key is used.

    With a known length the size must be exactly ``sealed_size(plaintext_length) - 72``. With an
    unknown length the plaintext length is derived from the size, rejecting a body with no chunk, a
    1..15-byte tail and an empty last chunk after index 0. Raises :class:`~cchet.SealedFormatError`.
    """
    cs = header.chunk_size
    if header.plaintext_length is not None:
        expected = sealed_size(header.plaintext_length, cs) - HEADER_SIZE
        if body_len != expected:
            raise SealedFormatError(
                "length",
                f"body is {body_len} bytes but the header's plaintext_length "
                f"{header.plaintext_length} needs {expected} (truncated or extended)",
            )
        return BodyLayout(header.plaintext_length, cs)
    full, tail = divmod(body_len, cs + TAG_SIZE)
    if full == 0 and tail == 0:
        raise SealedFormatError("length", "the stream has a header but no chunk")
    if 0 < tail < TAG_SIZE:
        raise SealedFormatError("length", f"a {tail}-byte tail is shorter than one tag (truncated)")
    if tail == TAG_SIZE and full > 0:
        raise SealedFormatError("length", f"empty last chunk at index {full} (only an empty stream has one)")
    plain = full * cs + (tail - TAG_SIZE if tail else 0)
    if plain > MAX_STREAM_BYTES:
        raise SealedFormatError("length", f"{plain} plaintext bytes exceeds the per-stream limit of {MAX_STREAM_BYTES}")
    return BodyLayout(plain, cs)


def stream_key(data_key: bytes, header: Header) -> bytes:
    """``HKDF-SHA256(ikm=data_key, salt=salt, info="cchet/v1/stream" || version || suite || key_id)``.

    RFC 5869 with a 32-byte output is one extract and one expand block; it is written out over the
    standard library's one-shot HMAC because building ``cryptography``'s HKDF object costs more than
    sealing a small message (tests check it against ``cryptography``'s HKDF).
    """
    info = STREAM_INFO + bytes([header.version, header.suite]) + header.key_id
    prk = hmac.digest(header.salt, data_key, "sha256")
    return hmac.digest(prk, info + b"\x01", "sha256")


def chunk_nonce(nonce_prefix: bytes, index: int, last: bool) -> bytes:
    """``nonce_prefix || BE32(index) || last``: 12 bytes."""
    return nonce_prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def chunk_aad(header_bytes: bytes, context: bytes) -> bytes:
    """``SHA-256(header || context)``: every chunk's associated data."""
    return hashlib.sha256(header_bytes + context).digest()
