"""The AMD extensions of a VCEK or VLEK certificate (OID arc 1.3.6.1.4.1.3704.1).

They state the TCB the key was derived for (boot loader, TEE, SNP, microcode and, on Turin, FMC SPLs), the
product name, and for a VCEK the chip's hardware id, or for a VLEK the CSP id. Per AMD's "Versioned Chip
Endorsement Key (VCEK) Certificate and KDS Interface Specification".
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from cchet.attest.formats.der import TAG_INTEGER, read_tlv
from cchet.errors import EvidenceFormatError

__all__ = ["AMD_OID", "AmdKeyExtensions", "parse_amd_extensions"]

AMD_OID = "1.3.6.1.4.1.3704.1"
_SPL = {"bootloader": "3.1", "tee": "3.2", "snp": "3.3", "microcode": "3.8", "fmc": "3.9"}


@dataclass(frozen=True)
class AmdKeyExtensions:
    """The TCB SPLs a VCEK/VLEK was issued for, its product name, and the chip's hwID (VCEK) or CSP id
    (VLEK)."""

    struct_version: int
    product_name: str
    bootloader: int
    tee: int
    snp: int
    microcode: int
    fmc: int | None
    hw_id: bytes | None
    csp_id: str | None


def _raw(cert: x509.Certificate, suffix: str) -> bytes | None:
    try:
        ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(f"{AMD_OID}.{suffix}"))
    except x509.ExtensionNotFound:
        return None
    return ext.value.value if isinstance(ext.value, x509.UnrecognizedExtension) else None


def _int(cert: x509.Certificate, suffix: str, field: str) -> int | None:
    raw = _raw(cert, suffix)
    if raw is None:
        return None
    tlv = read_tlv(raw, field=field)
    if tlv.tag != TAG_INTEGER or tlv.end != len(raw):
        raise EvidenceFormatError("expected a DER INTEGER", offset=0, field=field)
    return int.from_bytes(tlv.value, "big")


def parse_amd_extensions(cert: x509.Certificate) -> AmdKeyExtensions:
    """Reads the AMD extensions; raises :class:`EvidenceFormatError` when a required one is missing or
    malformed."""
    spl: dict[str, int | None] = {}
    for name, suffix in _SPL.items():
        spl[name] = _int(cert, suffix, f"vcek.{name}_spl")
    for name in ("bootloader", "tee", "snp", "microcode"):
        if spl[name] is None:
            raise EvidenceFormatError(f"missing {name} SPL extension", field=f"vcek.{name}_spl")
    product_raw = _raw(cert, "2")
    product = ""
    if product_raw is not None:
        tlv = read_tlv(product_raw, field="vcek.product_name")
        product = tlv.value.decode("ascii", "replace")
    csp_raw = _raw(cert, "5")
    csp = read_tlv(csp_raw, field="vcek.csp_id").value.decode("ascii", "replace") if csp_raw else None
    return AmdKeyExtensions(
        struct_version=_int(cert, "1", "vcek.struct_version") or 0,
        product_name=product,
        bootloader=spl["bootloader"] or 0,
        tee=spl["tee"] or 0,
        snp=spl["snp"] or 0,
        microcode=spl["microcode"] or 0,
        fmc=spl["fmc"],
        hw_id=_raw(cert, "4"),
        csp_id=csp,
    )
