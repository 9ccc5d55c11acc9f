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
    TAG_SEQUENCE,
    children,
    decode_oid,
    read_tlv,
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


def parse_pck_extensions(cert: x509.Certificate) -> PckExtensions:
    """Reads the SGX extension of ``cert``; raises :class:`EvidenceFormatError` if absent or malformed."""
    try:
        ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(SGX_EXTENSION_OID))
    except x509.ExtensionNotFound:
        raise EvidenceFormatError("PCK certificate has no SGX extension", field=_FIELD) from None
    raw = ext.value.value if isinstance(ext.value, x509.UnrecognizedExtension) else b""
    top = read_tlv(raw, field=_FIELD)
    if top.tag != TAG_SEQUENCE:
        raise EvidenceFormatError("SGX extension is not a SEQUENCE", offset=0, field=_FIELD)
    values: dict[str, tuple[int, bytes]] = {}
    for item in children(top.value, field=_FIELD):
        pair = children(item.value, field=_FIELD)
        if item.tag != TAG_SEQUENCE or len(pair) != 2:
            raise EvidenceFormatError("SGX extension entry is not (OID, value)", field=_FIELD)
        oid = decode_oid(pair[0].value, field=_FIELD)
        values[oid] = (pair[1].tag, pair[1].value)
        if oid == SGX_EXTENSION_OID + ".2" and pair[1].tag == TAG_SEQUENCE:
            for comp in children(pair[1].value, field=_FIELD + ".tcb"):
                sub = children(comp.value, field=_FIELD + ".tcb")
                if len(sub) != 2:
                    raise EvidenceFormatError("TCB entry is not (OID, value)", field=_FIELD + ".tcb")
                values[decode_oid(sub[0].value, field=_FIELD)] = (sub[1].tag, sub[1].value)

    def need(suffix: str, tag: int) -> bytes:
        got = values.get(f"{SGX_EXTENSION_OID}.{suffix}")
        if got is None or got[0] != tag:
            raise EvidenceFormatError(f"missing or mistyped SGX extension item .{suffix}", field=_FIELD)
        return got[1]

    comps = tuple(_int(need(f"2.{i}", TAG_INTEGER)) for i in range(1, 17))
    pid = values.get(SGX_EXTENSION_OID + ".6")
    return PckExtensions(
        ppid=need("1", TAG_OCTET_STRING),
        tcb_components=comps,
        pce_svn=_int(need("2.17", TAG_INTEGER)),
        cpu_svn=need("2.18", TAG_OCTET_STRING),
        pce_id=need("3", TAG_OCTET_STRING),
        fmspc=need("4", TAG_OCTET_STRING),
        sgx_type=_int(need("5", TAG_ENUMERATED)),
        platform_instance_id=pid[1] if pid and pid[0] == TAG_OCTET_STRING else None,
    )
