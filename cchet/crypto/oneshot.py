"""Seal and unseal whole buffers: :func:`seal`, :func:`unseal`, :func:`seal_into`, :func:`unseal_into`.

What they protect against: anyone who sees or changes the sealed bytes without the key learns nothing
but the plaintext's length and chunk size, and any change, truncation, reordering, splice from another
stream, wrong key or wrong ``context`` is detected before any plaintext is handed over.

What they do not: they hide neither the length nor the key id; an empty ``context`` binds the stream
to nothing, so a sealed blob can be moved to another place that uses the same key (bind the place in
``context``); a stream does not expire, so replay of a whole valid stream is the caller's concern.
"""

from __future__ import annotations

import os

from cchet.crypto import format as fmt
from cchet.crypto.buffers import as_context, readable_view, writable_view
from cchet.crypto.engine import ChunkCipher, zero
from cchet.errors import IntegrityError, SealedFormatError
from cchet.hazmat.keys import DataKey

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "new_header",
    "open_header",
    "seal",
    "seal_into",
    "seal_stream_into",
    "unseal",
    "unseal_into",
]

DEFAULT_CHUNK_SIZE = 1 << fmt.DEFAULT_CHUNK_LOG2


def new_header(key: DataKey, plaintext_length: int | None, chunk_size: int) -> fmt.Header:
    """A header with a fresh salt and nonce prefix from the OS CSPRNG (never reused, never derived)."""
    _check_key(key)
    fresh = os.urandom(fmt.SALT_SIZE + fmt.NONCE_PREFIX_SIZE)
    return fmt.Header(
        chunk_log2=fmt.chunk_log2_of(chunk_size),
        key_id=key.key_id,
        salt=fresh[: fmt.SALT_SIZE],
        nonce_prefix=fresh[fmt.SALT_SIZE :],
        plaintext_length=plaintext_length,
    )


def open_header(key: DataKey, data: bytes | memoryview) -> fmt.Header:
    """Parse a header and check that it names ``key``; :class:`~cchet.SealedFormatError` otherwise."""
    _check_key(key)
    header = fmt.Header.parse(data)
    if header.key_id != key.key_id:
        raise SealedFormatError(
            "key_id",
            f"the stream was sealed under key {header.key_id.hex()}, not {key.key_id.hex()}",
        )
    return header


def seal_stream_into(
    key: DataKey,
    header: fmt.Header,
    src: memoryview,
    dst: memoryview,
    context: bytes,
    *,
    threads: int | None = None,
    backend: str | None = None,
) -> int:
    """Seal ``src`` under an explicit ``header``. The header's salt and nonce prefix must be fresh:
    :func:`new_header` makes them. Public so that tests and other backends can inject them."""
    n = len(src)
    if n > fmt.MAX_STREAM_BYTES:
        raise ValueError(f"{n} bytes exceeds the per-stream limit of {fmt.MAX_STREAM_BYTES} bytes: split it")
    size = fmt.sealed_size(n, header.chunk_size)
    if len(dst) < size:
        raise ValueError(f"dst holds {len(dst)} bytes but sealing {n} bytes needs {size}: use sealed_size()")
    cipher = ChunkCipher(key, header, context, threads=threads, backend=backend)
    dst[: fmt.HEADER_SIZE] = cipher.header_bytes
    cipher.seal_chunks(src, dst[fmt.HEADER_SIZE : size], 0, final=True)
    return size


def seal_into(
    key: DataKey,
    src: object,
    dst: object,
    *,
    context: bytes = b"",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    threads: int | None = None,
    backend: str | None = None,
) -> int:
    """Seal ``src`` into the caller's buffer ``dst`` without intermediate copies; returns bytes written.

    ``dst`` must hold at least :func:`sealed_size` ``(len(src), chunk_size)`` bytes. Raises
    ``TypeError`` for wrong argument types and ``ValueError`` for a small ``dst``, a bad chunk size or
    an input over the per-stream limit (2**36 bytes).
    """
    s = readable_view(src, "src")
    d = writable_view(dst, "dst")
    header = new_header(key, len(s), chunk_size)
    return seal_stream_into(key, header, s, d, as_context(context), threads=threads, backend=backend)


def seal(
    key: DataKey,
    data: object,
    *,
    context: bytes = b"",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    threads: int | None = None,
    backend: str | None = None,
) -> bytes:
    """Seal ``data`` into a new sealed stream (format v1). See :func:`seal_into` for the errors."""
    s = readable_view(data, "data")
    out = bytearray(fmt.sealed_size(len(s), chunk_size))
    seal_into(key, s, out, context=context, chunk_size=chunk_size, threads=threads, backend=backend)
    return bytes(out)


def unseal_into(
    key: DataKey,
    src: object,
    dst: object,
    *,
    context: bytes = b"",
    threads: int | None = None,
    backend: str | None = None,
) -> int:
    """Open the sealed stream ``src`` into ``dst``; returns the plaintext length.

    Structure is checked before the key is used (:class:`~cchet.SealedFormatError`, naming the
    field); then every chunk's tag. On any :class:`~cchet.IntegrityError` the whole of ``dst`` is zeroed,
    so no unauthenticated byte remains. ``ValueError`` if ``dst`` is smaller than the plaintext.
    """
    s = readable_view(src, "src")
    d = writable_view(dst, "dst")
    ctx = as_context(context)
    try:
        header = open_header(key, s)
        layout = fmt.body_layout(header, len(s) - fmt.HEADER_SIZE)
    except IntegrityError:
        zero(d)
        raise
    n = layout.plaintext_length
    if len(d) < n:
        raise ValueError(f"dst holds {len(d)} bytes but the stream's plaintext is {n} bytes")
    cipher = ChunkCipher(key, header, ctx, threads=threads, backend=backend)
    try:
        cipher.open_chunks(s[fmt.HEADER_SIZE :], d[:n], 0, final=True)
    except IntegrityError:
        zero(d)
        raise
    return n


def unseal(
    key: DataKey,
    blob: object,
    *,
    context: bytes = b"",
    threads: int | None = None,
    backend: str | None = None,
) -> bytes:
    """Open a sealed stream and return its plaintext. See :func:`unseal_into` for the errors."""
    s = readable_view(blob, "blob")
    header = open_header(key, s)
    layout = fmt.body_layout(header, len(s) - fmt.HEADER_SIZE)
    out = bytearray(layout.plaintext_length)
    unseal_into(key, s, out, context=context, threads=threads, backend=backend)
    return bytes(out)


def _check_key(key: object) -> None:
    if not isinstance(key, DataKey):
        raise TypeError(
            f"key must be a cchet.DataKey (DataKey.generate() or one released by the broker), got {type(key).__name__}"
        )
