"""Checks of an SEV-SNP report: the VCEK/VLEK chain, the report signature, the key's TCB and chip id, CRLs.

What is checked: the chain VCEK -> ASK -> ARK or VLEK -> ASVK -> ARK to an AMD anchor, each link valid now;
under a real (non-simulated) root, every link is RSASSA-PSS with SHA-384 and the intermediate is the one
AMD issued for that key type (an ASVK never certifies a VCEK); the ECDSA P-384 signature over bytes
[0, 0x2A0) with little-endian r and s; that the reported TCB (and FMC on Turin) equals the TCB the key was
issued for; for a VCEK, that the chip id equals the certificate's hwID; when the options name one, the
product stepping in the key's product name (``Milan-B0``); and, when a CRL is given, that it is
signed by the ARK, current, and does not list the ASK/ASVK. The certificates come from the evidence, then
from ``chain`` (ASK/ASVK + ARK from KDS or the cache) and ``vcek`` (the VCEK from KDS or the cache); after
the key's certificate they may come in any order, with others beside them (a bundle of ASK, ARK and ASVK):
the path is built by :func:`~cchet.attest.verify.chain.build_path`, and the ASK/ASVK and ARK checked here
are the path's second and third certificates.
"""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from cchet.attest.formats.amd_cert import parse_amd_extensions
from cchet.attest.formats.certchain import name_text
from cchet.attest.formats.snp import SnpReport
from cchet.attest.verify.amd_certs import load_amd_certificates
from cchet.attest.verify.chain import CertificationPath, der_sha256, verify_path
from cchet.attest.verify.crl import revoked, verify_crl
from cchet.attest.verify.ecdsa import ecdsa_valid
from cchet.attest.verify.failure import Failure
from cchet.attest.verify.options import TrustAnchor
from cchet.attest.verify.roots import AMD_INTERMEDIATES

__all__ = ["SnpCheck", "check_amd_chain", "check_snp", "product_stepping", "signed_rsa_pss_sha384", "snp_product"]


@dataclass(frozen=True)
class SnpCheck:
    anchor: TrustAnchor | None
    failures: tuple[str, ...]


def snp_product(report: SnpReport, leaf: x509.Certificate | None) -> str | None:
    """Milan, Genoa or Turin: from the report (v3+), else from the key's issuer (``SEV-Milan``...)."""
    if report.product is not None:
        return report.product
    if leaf is not None:
        issuer = name_text(leaf, "issuer")
        for product in ("Milan", "Genoa", "Turin"):
            if f"-{product}" in issuer:
                return product
    return None


def signed_rsa_pss_sha384(cert: x509.Certificate) -> bool:
    """Whether the certificate is signed RSASSA-PSS with SHA-384, as every link of an AMD chain is (False when
    its signature algorithm does not decode: ``cryptography`` reads the parameters on first access)."""
    try:
        params = cert.signature_algorithm_parameters
        return isinstance(params, padding.PSS) and isinstance(cert.signature_hash_algorithm, hashes.SHA384)
    except (ValueError, UnsupportedAlgorithm):
        return False


def _assemble(certificates: bytes, chain: bytes, vcek: bytes) -> list[x509.Certificate]:
    """The key's certificate first (the evidence's first, else ``vcek``), then every other certificate offered,
    in any order: the path is built from them."""
    certs = load_amd_certificates(certificates) if certificates else []
    if not certs and vcek:
        certs = load_amd_certificates(vcek)
    if certs and chain:
        certs += load_amd_certificates(chain)
    return certs


def _check_amd_path(
    certs: list[x509.Certificate], anchors: tuple[TrustAnchor, ...], now: dt.datetime, signing_key: str
) -> tuple[CertificationPath, list[str]]:
    path, failures = verify_path(certs, anchors, now, what="snp.vcek_chain", check="amd.chain")
    chain = path.certificates
    if path.anchor is not None and not path.anchor.simulated:
        for i, cert in enumerate(chain):
            if not signed_rsa_pss_sha384(cert):
                failures.append(Failure("amd.chain", f"snp.vcek_chain: certificate {i} is not signed RSA-PSS SHA-384"))
        if len(chain) == 3:
            issued_for = AMD_INTERMEDIATES.get(der_sha256(chain[1]))
            if issued_for is None or issued_for[1] != signing_key:
                failures.append(
                    Failure("amd.chain", f"snp.vcek_chain: certificate 1 is not AMD's issuer of {signing_key}s")
                )
        else:
            failures.append(Failure("amd.chain", f"snp.vcek_chain: expected key, ASK/ASVK and ARK, got {len(chain)}"))
    return path, failures


def check_amd_chain(
    certs: list[x509.Certificate], anchors: tuple[TrustAnchor, ...], now: dt.datetime, signing_key: str
) -> tuple[TrustAnchor | None, list[str]]:
    """The VCEK/VLEK chain checks of the module docstring (``signing_key`` ``vcek`` or ``vlek``) on the path
    from ``certs[0]`` (the key's certificate) through the others, in any order
    (:func:`~cchet.attest.verify.chain.verify_path`); returns the anchor reached and every failure."""
    path, failures = _check_amd_path(certs, anchors, now, signing_key)
    return path.anchor, failures


def product_stepping(product_name: str) -> int | None:
    """The stepping in a VCEK/VLEK product name (``Milan-B0`` -> 0, ``Genoa-B1`` -> 1); None without one."""
    _, _, stepping = product_name.partition("-")
    digits = stepping[1:]
    return int(digits) if stepping[:1].isalpha() and digits.isdigit() else None


def _tcb_order_problem(report: SnpReport) -> str | None:
    """Why the report's TCB versions are out of order, or None: the firmware reports a TCB no higher than the
    one it committed to (below which it cannot be rolled back), and commits to none higher than it runs, so
    ``reported <= committed <= current`` holds for every component (FMC included on Turin)."""

    def parts(which: str) -> tuple[int, ...]:
        t = report.tcb(which)
        return (t.bootloader, t.tee, t.snp, t.microcode) + (() if t.fmc is None else (t.fmc,))

    reported, committed, current = parts("reported"), parts("committed"), parts("current")
    for low, high, a, b in (
        ("reported", "committed", reported, committed),
        ("committed", "current", committed, current),
    ):
        if any(x > y for x, y in zip(a, b, strict=True)):
            return (
                f"snp {low}_tcb {a} is above the {high}_tcb {b} in at least one component "
                "(firmware reports reported <= committed <= current)"
            )
    return None


def check_snp(
    report: SnpReport,
    certificates: bytes,
    anchors: tuple[TrustAnchor, ...],
    now: dt.datetime,
    *,
    chain: bytes = b"",
    vcek: bytes = b"",
    crl: bytes | None = None,
    stepping: int | None = None,
) -> SnpCheck:
    """Runs every check in the module docstring and lists each failure; raises
    :class:`~cchet.errors.EvidenceFormatError` only when the certificates do not decode."""
    failures: list[str] = []
    certs = _assemble(certificates, chain, vcek)
    if not certs:
        return SnpCheck(None, (Failure("amd.certificates_missing", "snp: no VCEK/VLEK certificate available"),))
    path, chain_failures = _check_amd_path(certs, anchors, now, report.signing_key)
    failures.extend(chain_failures)
    if not ecdsa_valid(certs[0], report.signed_bytes(), report.signature_r + report.signature_s, byteorder="little"):
        failures.append(Failure("amd.report_signature", "snp report signature does not verify with the VCEK/VLEK"))
    ext = parse_amd_extensions(certs[0])
    if stepping is not None and product_stepping(ext.product_name) != stepping:
        failures.append(
            Failure(
                "amd.product",
                f"snp: expected product stepping {stepping}, got {product_stepping(ext.product_name)} "
                f"({ext.product_name or 'no product name'})",
            )
        )
    tcb = report.tcb("reported")
    got = (tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode, tcb.fmc)
    want = (ext.bootloader, ext.tee, ext.snp, ext.microcode, ext.fmc if tcb.fmc is not None else None)
    if got != want:
        failures.append(Failure("amd.reported_tcb", f"snp reported_tcb {got} differs from the key's TCB {want}"))
    order = _tcb_order_problem(report)
    if order is not None:
        failures.append(Failure("amd.tcb_order", order))
    if report.signing_key == "vcek" and (
        not ext.hw_id or not hmac.compare_digest(ext.hw_id, report.chip_id[: len(ext.hw_id)])
    ):
        failures.append(Failure("amd.chip_id", "snp chip_id differs from the VCEK's hwID (or it has none)"))
    links = path.certificates
    if crl is not None and len(links) >= 3:
        parsed, crl_failures = verify_crl(crl, links[-1], now, what="amd crl", check="amd.crl")
        failures.extend(crl_failures)
        if parsed is not None and revoked(crl, links[1]):
            failures.append(Failure("amd.revoked", f"{name_text(links[1], 'subject')} is revoked by the ARK"))
    return SnpCheck(path.anchor, tuple(failures))
