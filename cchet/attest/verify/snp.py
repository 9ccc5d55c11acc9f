"""Checks of an SEV-SNP report: the VCEK/VLEK chain, the report signature, and the key's TCB and chip id.

What is checked: the chain (VCEK -> ASK -> ARK or VLEK -> ASVK -> ARK) to an AMD anchor; the ECDSA P-384
signature over bytes [0, 0x2A0) with little-endian r and s; that the reported TCB equals the TCB the key
was issued for; and, for a VCEK, that the chip id equals the certificate's hwID. Not checked here: AMD CRLs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cchet.attest.formats.amd_cert import parse_amd_extensions
from cchet.attest.formats.certchain import parse_pem_chain
from cchet.attest.formats.snp import SnpReport
from cchet.attest.verify.chain import verify_chain
from cchet.attest.verify.ecdsa import ecdsa_valid
from cchet.attest.verify.options import TrustAnchor

__all__ = ["SnpCheck", "check_snp"]


@dataclass(frozen=True)
class SnpCheck:
    anchor: TrustAnchor | None
    failures: tuple[str, ...]


def check_snp(report: SnpReport, certificates: bytes, anchors: tuple[TrustAnchor, ...], now: dt.datetime) -> SnpCheck:
    """Runs every check in the module docstring and lists each failure; raises
    :class:`~cchet.errors.EvidenceFormatError` only when the certificates do not decode."""
    failures: list[str] = []
    if not certificates:
        return SnpCheck(None, ("snp: no VCEK/VLEK certificate chain in the evidence",))
    certs = parse_pem_chain(certificates).certificates()
    anchor, chain_failures = verify_chain(certs, anchors, now, what="snp.vcek_chain")
    failures.extend(chain_failures)
    if not ecdsa_valid(certs[0], report.signed_bytes(), report.signature_r + report.signature_s, byteorder="little"):
        failures.append("snp report signature does not verify with the VCEK/VLEK")
    ext = parse_amd_extensions(certs[0])
    tcb = report.tcb("reported")
    got = (tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode)
    want = (ext.bootloader, ext.tee, ext.snp, ext.microcode)
    if got != want:
        failures.append(f"snp reported_tcb {got} differs from the key's TCB {want}")
    if report.signing_key == "vcek" and ext.hw_id is not None and ext.hw_id != report.chip_id[: len(ext.hw_id)]:
        failures.append("snp chip_id differs from the VCEK's hwID")
    return SnpCheck(anchor, tuple(failures))
