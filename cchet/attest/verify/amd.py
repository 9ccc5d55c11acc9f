"""Verifying one SEV-SNP report as a device: certificates from the evidence or collateral, then
:func:`~cchet.attest.verify.snp.check_snp` and, when asked, the report data."""

from __future__ import annotations

import hmac

from cryptography import x509

from cchet.attest.formats.snp import SnpReport
from cchet.attest.verify import memo
from cchet.attest.verify.amd_certs import load_amd_certificates
from cchet.attest.verify.failure import Failure
from cchet.attest.verify.options import VerifyOptions
from cchet.attest.verify.snp import check_snp, snp_product
from cchet.attest.verify.verified import VerifiedDevice

__all__ = ["verify_snp_device"]


def _reaches_a_root(certs: list[x509.Certificate]) -> bool:
    """Whether the evidence carries the key's issuer and a self-issued root (by name: the path builder checks
    signatures). A VLEK with an ASK and ARK but no ASVK does not, so the KDS chain is fetched for it."""
    if not certs:
        return False
    leaf, pool = memo.identity(certs[0]), [memo.identity(c) for c in certs[1:]]  # names as DER: decode nothing
    return any(c.subject == leaf.issuer for c in pool) and any(c.subject == c.issuer for c in pool)


def verify_snp_device(
    report: SnpReport,
    certificates: bytes,
    options: VerifyOptions,
    *,
    expected_report_data: bytes | None = None,
) -> tuple[VerifiedDevice, list[str]]:
    """The verified CPU device and every failure. ``certificates`` is the evidence's PEM (VCEK/VLEK first,
    ASK/ASVK and ARK optional); what is missing comes from ``options.collateral`` (KDS chain, VCEK by chip id
    and TCB), and the ARK's CRL is checked when the collateral has one. Raises
    :class:`~cchet.errors.EvidenceFormatError` when a certificate does not decode."""
    from cchet.attest.collateral.fetcher import FetchError

    now = options.now()
    have = load_amd_certificates(certificates) if certificates else []
    product = snp_product(report, have[0] if have else None) or options.amd_product
    chain = vcek = b""
    crl = None
    fetch_failures: list[str] = []
    source = options.collateral
    if source is not None and product is not None and report.signing_key in ("vcek", "vlek"):
        try:
            if not _reaches_a_root(have):
                chain = source.amd_chain(product, report.signing_key, now) or b""
            if not have and report.signing_key == "vcek":
                vcek = source.amd_vcek(report, product, now) or b""
            crl = source.amd_crl(product, report.signing_key, now)
        except FetchError as e:
            fetch_failures.append(Failure("amd.certificates_missing", f"fetching AMD collateral failed: {e}"))
    check = check_snp(
        report,
        certificates,
        options.anchors_for("amd"),
        now,
        chain=chain,
        vcek=vcek,
        crl=crl,
        stepping=options.amd_stepping,
    )
    failures = [*check.failures, *fetch_failures]
    if expected_report_data is not None and not hmac.compare_digest(expected_report_data, report.report_data):
        failures.append(
            Failure(
                "amd.nonce",
                f"report_data is {report.report_data.hex()}, expected {expected_report_data.hex()} "
                f"({len(expected_report_data)} bytes)",
            )
        )
    anchor = check.anchor
    device = VerifiedDevice("cpu", "snp", bool(anchor and anchor.simulated), anchor.fingerprint if anchor else "")
    return device, failures
