"""A second implementation of sealed-stream format v1, written from DESIGN.md section 3 alone.

It shares no code with cchet: HKDF is done by hand over hmac, AES-GCM comes from pycryptodome, the
header is assembled field by field. Tests use it to check that cchet and an outside reader agree.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from Crypto.Cipher import AES


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def seal_v1(
    data_key: bytes,
    key_id: bytes,
    data: bytes,
    *,
    context: bytes = b"",
    chunk_log2: int = 20,
    salt: bytes,
    nonce_prefix: bytes,
    length_known: bool = True,
) -> bytes:
    length = len(data) if length_known else 2**64 - 1
    header = (
        b"CCH1"
        + bytes([1, 1, chunk_log2, 0])
        + key_id
        + salt
        + nonce_prefix
        + b"\x00"
        + struct.pack(">Q", length)
    )
    assert len(header) == 72
    k = hkdf_sha256(data_key, salt, b"cchet/v1/stream" + bytes([1, 1]) + key_id)
    aad = hashlib.sha256(header + context).digest()
    size = 1 << chunk_log2
    chunks = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
    out = [header]
    for i, chunk in enumerate(chunks):
        last = 1 if i == len(chunks) - 1 else 0
        gcm = AES.new(k, AES.MODE_GCM, nonce=nonce_prefix + struct.pack(">I", i) + bytes([last]))
        gcm.update(aad)
        ct, tag = gcm.encrypt_and_digest(chunk)
        out.append(ct + tag)
    return b"".join(out)


def open_v1(data_key: bytes, key_id: bytes, blob: bytes, *, context: bytes = b"") -> bytes:
    """Plaintext, or ValueError for anything wrong."""
    if len(blob) < 72:
        raise ValueError("short header")
    header = blob[:72]
    if header[:4] != b"CCH1" or header[4] != 1 or header[5] != 1 or header[7] != 0 or header[63] != 0:
        raise ValueError("bad header")
    chunk_log2 = header[6]
    if not 12 <= chunk_log2 <= 26:
        raise ValueError("bad chunk_log2")
    if header[8:24] != key_id:
        raise ValueError("wrong key id")
    salt, prefix = header[24:56], header[56:63]
    (length,) = struct.unpack(">Q", header[64:72])
    size = 1 << chunk_log2
    body = blob[72:]
    step = size + 16
    pieces = [body[i : i + step] for i in range(0, len(body), step)]
    if not pieces:
        raise ValueError("no chunk")
    if len(pieces[-1]) < 16 or (len(pieces[-1]) == 16 and len(pieces) > 1):
        raise ValueError("bad tail")
    plain_len = len(body) - 16 * len(pieces)
    if length != 2**64 - 1 and length != plain_len:
        raise ValueError("length mismatch")
    k = hkdf_sha256(data_key, salt, b"cchet/v1/stream" + bytes([1, 1]) + key_id)
    aad = hashlib.sha256(header + context).digest()
    out = []
    for i, piece in enumerate(pieces):
        last = 1 if i == len(pieces) - 1 else 0
        gcm = AES.new(k, AES.MODE_GCM, nonce=prefix + struct.pack(">I", i) + bytes([last]))
        gcm.update(aad)
        out.append(gcm.decrypt_and_verify(piece[:-16], piece[-16:]))
    return b"".join(out)
