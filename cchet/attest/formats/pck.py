"""The Intel SGX extension (OID 1.2.840.113741.1.13.1) of a PCK certificate.

It carries the platform's FMSPC, PCE id, the 16 SGX TCB component SVNs, the PCE SVN and the CPU SVN, which
Intel's TCB status algorithm compares against TCB info. Layout per Intel's "SGX PCK Certificate and CRL
Profile": a SEQUENCE of (OID, value) pairs, the TCB being itself such a sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from cchet.attest.formats.der import (
    TAG_ENUMERATED,
    TAG_INTEGER,
    TAG_OCTET_STRING,
    TAG_OID,
    TAG_SEQUENCE,
    encode_oid,
    tlv_span,
)
from cchet.errors import EvidenceFormatError

__all__ = ["SGX_EXTENSION_OID", "PckExtensions", "parse_pck_extensions"]

SGX_EXTENSION_OID = "1.2.840.113741.1.13.1"
_FIELD = "pck.sgx_extension"


@dataclass(frozen=True)
class PckExtensions:
    """Values of the SGX extension. ``tcb_components`` are SGX TCB comp 01..16 in order."""

    ppid: bytes
    tcb_components: tuple[int, ...]
    pce_svn: int
    cpu_svn: bytes
    pce_id: bytes
    fmspc: bytes
    sgx_type: int
    platform_instance_id: bytes | None = None


def _int(value: bytes) -> int:
    return int.from_bytes(value, "big", signed=False)


def _span(raw: bytes, pos: int, end: int, field: str) -> tuple[int, int, int]:
    """:func:`tlv_span` inside ``raw[:end]``, with the short form (every entry of the extension but its two
    SEQUENCEs) decoded inline: this walk is most of the cost of reading a PCK certificate."""
    if pos + 2 <= end and raw[pos + 1] < 0x80:
        start, stop = pos + 2, pos + 2 + raw[pos + 1]
    else:
        _, start, stop = tlv_span(raw, pos, field=field)
    if stop > end or raw[pos] & 0x1F == 0x1F:
        raise EvidenceFormatError("DER element overruns the SGX extension entry", offset=pos, field=field)
    return raw[pos], start, stop


def _entries(raw: bytes, start: int, end: int, field: str) -> list[tuple[bytes, int, int, int]]:
    """The (OID, value) SEQUENCEs in ``raw[start:end]``: the OID's whole DER element (tag and length
    included, as :func:`encode_oid` writes it), the value's tag, and where its content starts and ends."""
    out = []
    pos = start
    while pos < end:
        # the common case inline: an entry, its OID and its value all with short-form lengths
        if pos + 4 <= end and raw[pos] == TAG_SEQUENCE and raw[pos + 1] < 0x80 and raw[pos + 2] == TAG_OID:
            item, item_end, oid_end = pos + 2, pos + 2 + raw[pos + 1], pos + 4 + raw[pos + 3]
            if raw[pos + 3] < 0x80 and oid_end + 2 <= item_end <= end and raw[oid_end + 1] < 0x80:
                value = oid_end + 2
                if raw[oid_end] & 0x1F != 0x1F and value + raw[oid_end + 1] == item_end:
                    out.append((raw[item:oid_end], raw[oid_end], value, item_end))
                    pos = item_end
                    continue
        tag, item, item_end = _span(raw, pos, end, field)
        if tag != TAG_SEQUENCE:
            raise EvidenceFormatError("SGX extension entry is not (OID, value)", offset=pos, field=field)
        oid_tag, _, oid_end = _span(raw, item, item_end, field)
        value_tag, value, value_end = _span(raw, oid_end, item_end, field)
        if oid_tag != TAG_OID or value_end != item_end:
            raise EvidenceFormatError("SGX extension entry is not (OID, value)", offset=pos, field=field)
        out.append((raw[item:oid_end], value_tag, value, value_end))
        pos = item_end
    return out


_SGX_EXTENSION = x509.ObjectIdentifier(SGX_EXTENSION_OID)
_OIDS = {suffix: encode_oid(f"{SGX_EXTENSION_OID}.{suffix}") for suffix in ("1", "2", "3", "4", "5", "6")}
_TCB_OIDS = {i: encode_oid(f"{SGX_EXTENSION_OID}.2.{i}") for i in range(1, 19)}
_COMPONENTS = tuple((_TCB_OIDS[i], f"2.{i}") for i in range(1, 17))  # SGX TCB comp 01..16 and their names


def parse_pck_extensions(cert: x509.Certificate) -> PckExtensions:
    """Reads the SGX extension of ``cert``; raises :class:`EvidenceFormatError` if absent or malformed."""
    try:
        ext = cert.extensions.get_extension_for_oid(_SGX_EXTENSION)
    except x509.ExtensionNotFound:
        raise EvidenceFormatError("PCK certificate has no SGX extension", field=_FIELD) from None
    raw = ext.value.value if isinstance(ext.value, x509.UnrecognizedExtension) else b""
    tag, start, end = tlv_span(raw, field=_FIELD)
    if tag != TAG_SEQUENCE:
        raise EvidenceFormatError("SGX extension is not a SEQUENCE", offset=0, field=_FIELD)
    values: dict[bytes, tuple[int, bytes]] = {}
    tcb_oid = _OIDS["2"]
    for oid, value_tag, value, value_end in _entries(raw, start, end, _FIELD):
        values[oid] = (value_tag, raw[value:value_end])
        if oid == tcb_oid and value_tag == TAG_SEQUENCE:
            for sub, sub_tag, sub_value, sub_end in _entries(raw, value, value_end, _FIELD + ".tcb"):
                values[sub] = (sub_tag, raw[sub_value:sub_end])

    def need(oid: bytes, tag: int, name: str) -> bytes:
        got = values.get(oid)
        if got is None or got[0] != tag:
            raise EvidenceFormatError(f"missing or mistyped SGX extension item .{name}", field=_FIELD)
        return got[1]

    comps = tuple(_int(need(oid, TAG_INTEGER, name)) for oid, name in _COMPONENTS)
    pid = values.get(_OIDS["6"])
    return PckExtensions(
        ppid=need(_OIDS["1"], TAG_OCTET_STRING, "1"),
        tcb_components=comps,
        pce_svn=_int(need(_TCB_OIDS[17], TAG_INTEGER, "2.17")),
        cpu_svn=need(_TCB_OIDS[18], TAG_OCTET_STRING, "2.18"),
        pce_id=need(_OIDS["3"], TAG_OCTET_STRING, "3"),
        fmspc=need(_OIDS["4"], TAG_OCTET_STRING, "4"),
        sgx_type=_int(need(_OIDS["5"], TAG_ENUMERATED, "5")),
        platform_instance_id=pid[1] if pid and pid[0] == TAG_OCTET_STRING else None,
    )
