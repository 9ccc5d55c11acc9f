"""A small DER walker and writer, enough for the vendor extensions inside attestation certificates.

``cryptography`` parses the certificates themselves; their vendor extensions (Intel's SGX extension, AMD's
TCB extensions, the TCG DICE FWID) arrive as raw DER, which :func:`read_tlv` and :func:`children` walk.
Only definite lengths are accepted (DER has no other kind); anything malformed raises
:class:`EvidenceFormatError` with the offset inside the extension value.
"""

from __future__ import annotations

from dataclasses import dataclass

from cchet.errors import EvidenceFormatError

__all__ = [
    "TAG_ENUMERATED",
    "TAG_INTEGER",
    "TAG_OCTET_STRING",
    "TAG_OID",
    "TAG_SEQUENCE",
    "Tlv",
    "children",
    "decode_oid",
    "encode_integer",
    "encode_oid",
    "encode_tlv",
    "read_tlv",
    "tlv_span",
]

TAG_INTEGER = 0x02
TAG_OCTET_STRING = 0x04
TAG_OID = 0x06
TAG_ENUMERATED = 0x0A
TAG_SEQUENCE = 0x30


@dataclass(frozen=True)
class Tlv:
    """One DER element: its tag byte, its content, and where it ends in the enclosing buffer."""

    tag: int
    value: bytes
    end: int


def tlv_span(data: bytes, offset: int = 0, *, field: str = "der") -> tuple[int, int, int]:
    """The element starting at ``offset`` as (tag, where its value starts, where it ends), copying nothing.
    Raises :class:`EvidenceFormatError` if it does not fit."""
    if offset + 2 > len(data):
        raise EvidenceFormatError("truncated DER header", offset=offset, field=field)
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise EvidenceFormatError("multi-byte DER tags are not supported", offset=offset, field=field)
    first = data[offset + 1]
    pos = offset + 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or pos + n > len(data):
            raise EvidenceFormatError("bad DER length", offset=offset + 1, field=field)
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if pos + length > len(data):
        raise EvidenceFormatError(f"DER value of {length} bytes overruns its buffer", offset=offset, field=field)
    return tag, pos, pos + length


def read_tlv(data: bytes, offset: int = 0, *, field: str = "der") -> Tlv:
    """Reads the element starting at ``offset``. Raises :class:`EvidenceFormatError` if it does not fit."""
    tag, start, end = tlv_span(data, offset, field=field)
    return Tlv(tag, data[start:end], end)


def children(value: bytes, *, field: str = "der") -> list[Tlv]:
    """The elements inside a constructed value, in order; the whole value must be consumed."""
    out = []
    pos = 0
    while pos < len(value):
        tlv = read_tlv(value, pos, field=field)
        out.append(tlv)
        pos = tlv.end
    return out


def decode_oid(value: bytes, *, field: str = "der.oid") -> str:
    """Dotted-decimal form of an OBJECT IDENTIFIER's content bytes."""
    if not value or value[-1] & 0x80:
        raise EvidenceFormatError("malformed OID", offset=0, field=field)
    arcs: list[int] = []
    acc = 0
    for b in value:
        acc = (acc << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(acc)
            acc = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(a) for a in head + arcs[1:])


def encode_tlv(tag: int, value: bytes) -> bytes:
    """DER encoding of one element."""
    n = len(value)
    if n < 0x80:
        return bytes((tag, n)) + value
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(raw))) + raw + value


def encode_oid(dotted: str) -> bytes:
    """DER encoding of an OBJECT IDENTIFIER given in dotted-decimal form."""
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray()
    for value in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [value & 0x7F]
        rest = value >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        body += bytes(reversed(chunk))
    return encode_tlv(TAG_OID, bytes(body))


def encode_integer(value: int, tag: int = TAG_INTEGER) -> bytes:
    """DER encoding of a non-negative INTEGER (or ENUMERATED with ``tag``)."""
    raw = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big")
    return encode_tlv(tag, raw)
