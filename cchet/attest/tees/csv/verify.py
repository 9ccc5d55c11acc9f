"""Verifying a Hygon CSV report as a device: the chain HRK -> HSK -> CEK -> PEK, the report's signature, its
report data.

What is checked, each an independent check (``CHECKS`` of :mod:`cchet.attest.tees.csv`):

- ``csv.certificates_missing``: the HSK and CEK of the report's chip (from the evidence, then the collateral
  cache or an injected fetcher: Hygon's KDS by serial number) and the HRK certificate (from the evidence, a trust
  anchor that carries it, or the collateral) are all here; the failure names what is missing, for which serial,
  and where to get it. Nothing is reported as verified without them.
- ``csv.chain``: a Hygon trust anchor is in the options and the HRK hashes to one; the HRK is a root key (usage
  0, SM2 curve) that certifies itself (certifying id = key id) and whose self-signature verifies; the HSK (usage
  0x13) is certified by it (certifying id = the HRK's key id) and signed by its key; the CEK (usage 0x1004) has a
  signature slot of the HSK's usage and algorithm that the HSK's key verifies; the PEK (usage 0x1002) has one of
  the CEK's usage that the CEK's key verifies. Every signature is SM2 over SM3 with the *signer's* ID as the
  distinguishing ID (:mod:`cchet.attest.tees.csv.sm2`). With the HSK/CEK missing, the HRK's own checks still run.
- ``csv.report_signature``: the report's signing certificate is a PEK on the SM2 curve, the report's
  sig_usage/sig_algo say PEK/SM2, and the tee-info signature verifies under the PEK's key with its ID over bytes
  [0, 180) (V1, masked as stored) or [0, 1024) (V2).
- ``csv.nonce``: with expected report data, the (unmasked) report data is exactly those 64 bytes.

Hygon's certificates have no validity period and Hygon publishes no revocation list, so there is no time or
revocation check to make: trust is the pinned HRK. The PEK is always the report's own (its signer block, or the
evidence document's ``cert_chain.pek``); ``certificates`` supply the HRK, HSK and CEK. In a V1 report ``anonce``
lies outside the signed bytes and re-masks every field: only the binding (or ``--nonce``) detects a changed
``anonce`` -- see ``docs/tees/csv.md``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass

from cchet.attest.collateral.source import valid_hygon_serial
from cchet.attest.tees.csv import sm2
from cchet.attest.tees.csv.certs import (
    ALGO_SM2_SIGN,
    CURVE_SM2,
    USAGE_CEK,
    USAGE_HRK,
    USAGE_HSK,
    USAGE_PEK,
    CaCertificate,
    CsvCertificate,
    HygonCertificate,
    parse_certificates,
    parse_csv_certificate,
)
from cchet.attest.tees.csv.collateral import HygonProvider, cache_path, hygon_source, service_urls
from cchet.attest.tees.csv.evidence import CsvEvidence
from cchet.attest.tees.csv.report import SIGNED_SIZE, TEE_INFO_SIZE, CsvReport
from cchet.attest.verify.failure import Failure
from cchet.attest.verify.options import TrustAnchor, VerifyOptions
from cchet.attest.verify.verified import VerifiedDevice
from cchet.errors import EvidenceFormatError, FetchError

__all__ = ["chain_problems", "report_pek", "report_signature_problems", "verify_csv_device"]


def report_pek(report: CsvReport | CsvEvidence) -> CsvCertificate:
    """The PEK that signed the report: the document's ``cert_chain.pek``, or the report's signer block.
    Raises :class:`EvidenceFormatError` when the signer block holds no decodable certificate."""
    if isinstance(report, CsvEvidence):
        return report.pek
    return parse_csv_certificate(report.pek_bytes(), base=20 + TEE_INFO_SIZE[report.version])


def _sig_ok(signer: CaCertificate | CsvCertificate, message: bytes, signature: tuple[int, int]) -> bool:
    return sm2.verify(signer.point, signer.distinguishing_id, message, signature)


def report_signature_problems(report: CsvReport, pek: CsvCertificate) -> list[str]:
    """Why the report's signature by ``pek`` does not hold (empty when it does)."""
    out = []
    if pek.usage != USAGE_PEK or pek.curve != CURVE_SM2 or pek.algo != ALGO_SM2_SIGN:
        out.append(
            f"the report's signing certificate is a {pek.role} (usage {pek.usage:#x}, algorithm {pek.algo}, curve "
            f"{pek.curve}), not a PEK (usage {USAGE_PEK:#x}, SM2 signing {ALGO_SM2_SIGN}, curve {CURVE_SM2})"
        )
    if report.sig_usage != USAGE_PEK or report.sig_algo != ALGO_SM2_SIGN:
        out.append(
            f"tee_info.sig_usage/sig_algo are {report.sig_usage:#x}/{report.sig_algo}, expected "
            f"{USAGE_PEK:#x}/{ALGO_SM2_SIGN} (PEK, SM2)"
        )
    r, s = (int.from_bytes(v, "little") for v in (report.tee_info.signature_r, report.tee_info.signature_s))
    if not _sig_ok(pek, report.signed_bytes(), (r, s)):
        out.append(
            f"the V{report.version} report signature (SM2/SM3, ID {pek.distinguishing_id!r}) over bytes "
            f"[0, {SIGNED_SIZE[report.version]}) does not verify under the PEK's key"
        )
    return out


def _hrk_problems(hrk: CaCertificate) -> list[str]:
    out = []
    if hrk.usage != USAGE_HRK or hrk.curve != CURVE_SM2:
        out.append(f"the root is a {hrk.role} on curve {hrk.curve}, not the HRK (usage 0, SM2 curve {CURVE_SM2})")
    if hrk.certifying_id != hrk.key_id:
        out.append("the HRK is not self-certified (certifying id differs from its key id)")
    if not _sig_ok(hrk, hrk.body(), hrk.signature):
        out.append(f"the HRK self-signature (ID {hrk.distinguishing_id!r}) does not verify")
    return out


def _slot_verifies(cert: CsvCertificate, signer: CaCertificate | CsvCertificate, algo: int) -> bool:
    body = cert.body()
    return any(
        slot.usage == signer.usage and slot.algo == algo and _sig_ok(signer, body, slot.signature)
        for slot in cert.slots
    )


def chain_problems(
    hrk: CaCertificate, hsk: CaCertificate | None, cek: CsvCertificate | None, pek: CsvCertificate
) -> list[str]:
    """Why HRK -> HSK -> CEK -> PEK does not hold (empty when it does); without the HSK or CEK, the HRK's own
    checks only."""
    out = _hrk_problems(hrk)
    if hsk is None or cek is None:
        return out
    if hsk.usage != USAGE_HSK or hsk.curve != CURVE_SM2:
        out.append(f"the HSK certificate is a {hsk.role} on curve {hsk.curve}, not an HSK (usage {USAGE_HSK:#x})")
    if hsk.certifying_id != hrk.key_id:
        out.append("the HSK is certified by another key than this HRK (certifying id differs from the HRK's key id)")
    if not _sig_ok(hrk, hsk.body(), hsk.signature):
        out.append(f"the HSK's signature by the HRK (ID {hrk.distinguishing_id!r}) does not verify")
    if cek.usage != USAGE_CEK or cek.curve != CURVE_SM2:
        out.append(f"the CEK certificate is a {cek.role} on curve {cek.curve}, not a CEK (usage {USAGE_CEK:#x})")
    if not _slot_verifies(cek, hsk, ALGO_SM2_SIGN):
        out.append(f"no signature slot of the CEK verifies under the HSK (ID {hsk.distinguishing_id!r})")
    if not _slot_verifies(pek, cek, cek.algo):
        out.append(f"no signature slot of the PEK verifies under the CEK (ID {cek.distinguishing_id!r})")
    return out


@dataclass(frozen=True)
class _Root:
    anchor: TrustAnchor
    hrk: CaCertificate


def _roots(
    anchors: tuple[TrustAnchor, ...],
    offered: list[HygonCertificate],
    source: HygonProvider | None,
    now: dt.datetime,
    errors: list[str],
) -> list[_Root]:
    """Every HRK that hashes to an anchor: carried by the anchor, offered with the evidence, else from the
    collateral (only when an anchor is pinned by fingerprint alone)."""
    by_fingerprint = {a.sha256: a for a in anchors}
    candidates = [a.certificate_der for a in anchors if a.certificate_der]
    candidates += [c.to_bytes() for c in offered if isinstance(c, CaCertificate) and c.usage == USAGE_HRK]

    def matching(blobs: list[bytes]) -> list[_Root]:
        out = []
        for blob in dict.fromkeys(blobs):
            anchor = by_fingerprint.get(hashlib.sha256(blob).hexdigest())
            if anchor is not None:
                try:
                    cert = parse_certificates(blob)
                except EvidenceFormatError as e:
                    errors.append(f"the {anchor.name} root does not decode as a Hygon certificate: {e}")
                    continue
                if len(cert) == 1 and isinstance(cert[0], CaCertificate):
                    out.append(_Root(anchor, cert[0]))
        return out

    found = matching(candidates)
    if not found and source is not None and any(not a.certificate_der for a in anchors):
        try:
            fetched = source.hygon_hrk(now)
        except FetchError as e:
            errors.append(f"fetching the HRK failed: {e}")
            fetched = None
        if fetched is not None:
            found = matching([fetched])
    return found


def _where(source: HygonProvider | None, key: str) -> str:
    path = cache_path(source, key)
    return f" (looked in {path})" if path is not None else ""


def verify_csv_device(
    report: CsvReport | CsvEvidence,
    certificates: bytes,
    options: VerifyOptions,
    *,
    expected_report_data: bytes | None = None,
) -> tuple[VerifiedDevice, list[str]]:
    """The verified CPU device and every failure (see the module docstring). ``certificates`` is a Hygon
    certificate bundle (:func:`~cchet.attest.tees.csv.certs.parse_certificates`) that may hold the HRK, HSK
    and CEK. Raises :class:`EvidenceFormatError` when a certificate of the evidence does not decode."""
    now = options.now()
    doc = report if isinstance(report, CsvEvidence) else None
    wrapper = doc.report if doc is not None else report
    assert isinstance(wrapper, CsvReport)
    offered: list[HygonCertificate] = list(parse_certificates(certificates)) if certificates.strip() else []
    if doc is not None:
        offered += doc.certificates()
    pek = report_pek(report)
    serial = doc.serial_number if doc is not None else wrapper.serial_number
    source = hygon_source(options.collateral)
    missing: list[str] = []
    chain: list[str] = []

    hsk = next((c for c in offered if isinstance(c, CaCertificate) and c.usage == USAGE_HSK), None)
    cek = next((c for c in offered if isinstance(c, CsvCertificate) and c.usage == USAGE_CEK), None)
    if hsk is None or cek is None:
        hsk, cek = _hsk_cek_from_collateral(source, serial, now, missing)

    anchors = options.anchors_for("hygon")
    errors: list[str] = []
    roots = _roots(anchors, offered, source, now, errors)
    if not anchors:
        chain.append("no Hygon root is trusted: the verification options carry no 'hygon' trust anchor")
    elif not roots:
        pinned = ", ".join(f"{a.name} (SHA-256 {a.sha256})" for a in anchors)
        missing.append(
            f"the Hygon Root Key certificate is missing: none offered with the evidence or in the collateral"
            f"{_where(source, 'hrk')} hashes to a trusted root ({pinned}); pass hrk.cert with --certs, or "
            f"get it from {service_urls(source).hygon_hrk()} into the collateral cache as hygon/hrk.cert"
            + (f" [{'; '.join(errors)}]" if errors else "")
        )
    root: _Root | None = None
    if roots:
        root = next((r for r in roots if hsk is not None and r.hrk.key_id == hsk.certifying_id), roots[0])
        chain += chain_problems(root.hrk, hsk, cek, pek)

    failures: list[str] = [Failure("csv.certificates_missing", m) for m in missing]
    failures += [Failure("csv.chain", c) for c in chain]
    failures += [Failure("csv.report_signature", p) for p in report_signature_problems(wrapper, pek)]
    if expected_report_data is not None and not hmac.compare_digest(expected_report_data, wrapper.report_data):
        failures.append(
            Failure(
                "csv.nonce",
                f"report_data is {wrapper.report_data.hex()}, expected {expected_report_data.hex()} "
                f"({len(expected_report_data)} bytes; the report data is 64 bytes, compared exactly)",
            )
        )
    complete = root is not None and hsk is not None and cek is not None and not chain
    anchor = root.anchor if complete and root is not None else None
    device = VerifiedDevice("cpu", "csv", bool(anchor and anchor.simulated), anchor.fingerprint if anchor else "")
    return device, failures


def _hsk_cek_from_collateral(
    source: HygonProvider | None, serial: str, now: dt.datetime, missing: list[str]
) -> tuple[CaCertificate | None, CsvCertificate | None]:
    valid = valid_hygon_serial(serial)
    where = f"Hygon's KDS at {service_urls(source).hygon_hsk_cek(serial)}" if valid else "Hygon's KDS"
    what = f"the HSK and CEK certificates of chip {serial!r} are missing: not in the evidence"
    if not valid:
        missing.append(f"{what}, and the report's serial number cannot name a chip to look them up")
        return None, None
    if source is None:
        missing.append(f"{what} and no collateral source is configured; get them (HSK then CEK) from {where}")
        return None, None
    try:
        blob = source.hygon_hsk_cek(serial, now)
    except FetchError as e:
        missing.append(f"{what} or the collateral cache, and fetching them from {where} failed: {e}")
        return None, None
    if blob is None:
        missing.append(
            f"{what}, not in the collateral cache{_where(source, f'hsk_cek-{serial}')}, and no fetcher is "
            f"configured (verification never reaches the network on its own); get them (HSK then CEK, 2916 bytes) "
            f"from {where} into the cache as hygon/hsk_cek-{serial}.cert, or pass them with --certs"
        )
        return None, None
    try:
        certs = parse_certificates(blob)
    except EvidenceFormatError as e:
        missing.append(f"the collateral's HSK/CEK of chip {serial!r} do not decode: {e}")
        return None, None
    hsk = next((c for c in certs if isinstance(c, CaCertificate) and c.usage == USAGE_HSK), None)
    cek = next((c for c in certs if isinstance(c, CsvCertificate) and c.usage == USAGE_CEK), None)
    if hsk is None or cek is None:
        missing.append(f"the collateral for chip {serial!r} holds no HSK and CEK (it holds {[c.role for c in certs]})")
    return hsk, cek
