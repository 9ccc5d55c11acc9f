"""Checks of a DCAP quote (TDX v4/v5, SGX v3): signatures, the QE binding, the PCK chain and its CRLs, the
TCB info and QE identity, and Intel's TCB status.

Every check runs and reports independently (each failure a :class:`~cchet.attest.verify.failure.Failure`
naming its check in :data:`~cchet.attest.verify.checks.CHECKS`). What is checked: the quote signature by
the attestation key; the QE report signature by the PCK key; QE report data = SHA-256(attestation key || QE
auth data) || zeros; the PCK chain to an Intel anchor; the PCK CRL (signed by the PCK CA) and root CRL
(signed by the root), current, not listing the PCK leaf, the PCK CA or the TCB signing certificate; the TCB
info and QE identity: issuer chains to the same anchor, signed over their exact text by Intel's TCB signing
certificate and no other certificate under the root (:mod:`cchet.attest.verify.tcb_signer`), then parsed
(:mod:`cchet.attest.formats.intel_collateral`), their validity window, id, version, FMSPC and PCE id; the QE
identity (MRSIGNER, ISV PRODID, MISCSELECT and ATTRIBUTES under their masks); the TDX module identity; and
Intel's TCB status (:mod:`cchet.attest.verify.tcb_status`), where no matching level, or a Revoked one, is a
failure. What is not: measurements and debug bits (policy).

Collateral is authenticated before it is parsed: its text is parsed only once the signature over the exact
text verifies with the first certificate of its issuer chain and that certificate passes the TCB signer
checks. Whether the chain leads to the anchor is checked beside this and does not withhold the text, so
that expired collateral still shows its status; a broken chain fails verification all the same. Malformed
collateral, signed or not, is a tagged failure, never an exception.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from cchet.attest.formats.certchain import name_text
from cchet.attest.formats.dcap import Quote, TdReportBody
from cchet.attest.formats.intel_collateral import (
    IdentityLevel,
    QeIdentity,
    TcbInfo,
    TdxModule,
    TdxModuleIdentity,
    parse_qe_identity,
    parse_tcb_info,
)
from cchet.attest.formats.pck import PckExtensions
from cchet.attest.rawsig import public_key_from_point
from cchet.attest.verify import memo
from cchet.attest.verify.chain import der_sha256, verify_chain, verify_path
from cchet.attest.verify.crl import revoked, verify_crl
from cchet.attest.verify.ecdsa import ecdsa_valid
from cchet.attest.verify.failure import Failure
from cchet.attest.verify.options import TrustAnchor
from cchet.attest.verify.tcb_signer import tcb_signer_problems
from cchet.attest.verify.tcb_status import STATUS_ORDER, converge, matches_platform_level, ordered_levels
from cchet.errors import EvidenceFormatError

__all__ = ["STATUS_ORDER", "QuoteCheck", "check_quote"]


@dataclass(frozen=True)
class QuoteCheck:
    """What checking a quote found: the anchor reached, TCB status and advisories (None/empty when they
    could not be determined), and every failure."""

    anchor: TrustAnchor | None
    tcb_status: str | None
    advisory_ids: tuple[str, ...]
    failures: tuple[str, ...]
    pck: PckExtensions | None


def _certs(pems: tuple[bytes, ...], what: str) -> list[x509.Certificate]:
    return [memo.certificate(p, field=f"{what}[{i}]") for i, p in enumerate(pems)]


def _text(collateral: Mapping[str, object], key: str) -> str:
    """``collateral[key]`` (empty when absent); ``ValueError`` when it is not text (a malformed JSON file)."""
    value = collateral.get(key, "")
    if not isinstance(value, str):
        raise ValueError(f"{key} is not text")
    return value


def _authentic_text(
    collateral: Mapping[str, str],
    name: str,
    anchors: tuple[TrustAnchor, ...],
    now: dt.datetime,
    failures: list[str],
) -> tuple[str | None, x509.Certificate | None]:
    """The exact text of collateral ``name`` when the TCB signing certificate signed it (None otherwise), and
    the first certificate of its issuer chain (None when the chain does not decode) for the root CRL check.

    The issuer chain is checked to the anchor (``intel.<name>_chain``), its first certificate against Intel's
    TCB signing certificate (``intel.tcb_signer``) and the signature over the exact text by that certificate
    (``intel.<name>_signature``), each reported on its own. The text is handed on (to be parsed) only when the
    first certificate passes the TCB signer checks and its signature verifies; a chain failure is reported
    but does not withhold it, so that expired collateral still shows what it says."""
    try:
        text = _text(collateral, name)
        chain = list(memo.certificates(_text(collateral, f"{name}_issuer_chain").encode()))
        sig = bytes.fromhex(_text(collateral, f"{name}_signature"))
    except (EvidenceFormatError, ValueError) as e:
        failures.append(Failure("intel.collateral_missing", f"collateral.{name}: malformed: {e}"))
        return None, None
    anchor, chain_failures = verify_chain(
        chain, anchors, now, what=f"collateral.{name}_issuer_chain", check=f"intel.{name}_chain"
    )
    failures.extend(chain_failures)
    signer_problems = tcb_signer_problems(chain, anchor)
    for problem in signer_problems:
        failures.append(
            Failure(
                "intel.tcb_signer",
                f"collateral.{name}_issuer_chain: certificate 0 ({name_text(chain[0], 'subject')}) is not the "
                f"Intel SGX TCB Signing certificate: {problem}",
            )
        )
    signed = ecdsa_valid(chain[0], text.encode(), sig)
    if not signed:
        failures.append(
            Failure(f"intel.{name}_signature", f"collateral.{name}: signature does not verify with the TCB signing key")
        )
    return (text if signed and not signer_problems else None), chain[0]


_Parsed = TypeVar("_Parsed", TcbInfo, QeIdentity)


def _parsed(
    parse: Callable[[str], _Parsed], text: str | None, name: str, now: dt.datetime, failures: list[str]
) -> _Parsed | None:
    """``text`` (authenticated) parsed, and its validity window checked against ``now``; None when there is
    no text or it does not parse (listed as malformed collateral)."""
    if text is None:
        return None
    try:
        doc = parse(text)
    except EvidenceFormatError as e:
        failures.append(Failure("intel.collateral_missing", f"collateral.{name}: malformed: {e}"))
        return None
    if not doc.issue_date <= now <= doc.next_update:
        state = "expired" if now > doc.next_update else "not yet valid"
        failures.append(
            Failure(
                f"intel.{name}_validity",
                f"collateral.{name}: not valid at {now.isoformat()}, {state} "
                f"({doc.issue_date:%Y-%m-%dT%H:%M:%SZ}..{doc.next_update:%Y-%m-%dT%H:%M:%SZ})",
            )
        )
    return doc


def _masked(value: bytes, mask: bytes) -> bytes:
    return bytes(a & m for a, m in zip(value, mask, strict=False))


_IDENTITY_STATUSES = ("UpToDate", "OutOfDate", "Revoked")


def _identity_status(level: IdentityLevel, what: str, failures: list[str]) -> tuple[str, tuple[str, ...]] | None:
    """A QE or TDX module level's status, which can only be UpToDate, OutOfDate or Revoked."""
    if level.tcb_status not in _IDENTITY_STATUSES:
        failures.append(
            Failure("intel.tcb_level", f"{what}: TCB status {level.tcb_status!r} is not one an identity can have")
        )
        return None
    return level.tcb_status, level.advisory_ids


def _module_identity(module: TdxModule | TdxModuleIdentity, body: TdReportBody, what: str, failures: list[str]) -> None:
    if module.mr_signer != body.mr_signer_seam:
        failures.append(Failure("intel.tdx_module", f"td_report.mr_signer_seam does not match {what}"))
    mask = module.attributes_mask
    if _masked(body.seam_attributes, mask) != _masked(module.attributes, mask):
        failures.append(Failure("intel.tdx_module", f"td_report.seam_attributes do not match {what}"))


def _tdx_module(tcb_info: TcbInfo, body: TdReportBody, failures: list[str]) -> tuple[str, tuple[str, ...]] | None:
    """The TDX module's status and advisories (None when no level matches, listed as a failure)."""
    version = body.tee_tcb_svn[1]
    if version == 0:  # TDX 1.0 modules: judged by tcb_info.tdxModule and the platform's TDX components
        if tcb_info.tdx_module is not None:
            _module_identity(tcb_info.tdx_module, body, "tcb_info.tdxModule", failures)
        return "UpToDate", ()
    wanted = f"TDX_{version:02X}"
    for ident in tcb_info.tdx_module_identities:
        if ident.id != wanted:
            continue
        _module_identity(ident, body, wanted, failures)
        for level in ident.tcb_levels:
            if body.tee_tcb_svn[0] >= level.isv_svn:
                return _identity_status(level, wanted, failures)
        failures.append(Failure("intel.tcb_level", f"tcb_info: no {wanted} level matches TDX module SVN"))
        return None
    failures.append(Failure("intel.tdx_module", f"tcb_info has no TDX module identity {wanted}"))
    return None


def _qe(identity: QeIdentity, quote: Quote, failures: list[str]) -> tuple[str, tuple[str, ...]] | None:
    qe = quote.signature.qe.qe_report
    want_id = "TD_QE" if quote.kind == "tdx" else "QE"
    if identity.id != want_id:
        failures.append(Failure("intel.qe_identity", f"collateral.qe_identity.id is {identity.id!r}, not {want_id}"))
    if identity.mr_signer != qe.mr_signer:
        failures.append(Failure("intel.qe_identity", "qe_report.mr_signer does not match the QE identity"))
    if identity.isv_prod_id != qe.isv_prod_id:
        failures.append(Failure("intel.qe_identity", "qe_report.isv_prod_id does not match the QE identity"))
    mask = identity.miscselect_mask
    if qe.misc_select & mask != identity.miscselect & mask:
        failures.append(Failure("intel.qe_identity", "qe_report.misc_select does not match the QE identity"))
    amask = identity.attributes_mask
    if _masked(qe.attributes, amask) != _masked(identity.attributes, amask):
        failures.append(Failure("intel.qe_identity", "qe_report.attributes do not match the QE identity"))
    for level in identity.tcb_levels:
        if qe.isv_svn >= level.isv_svn:
            return _identity_status(level, "QE identity", failures)
    failures.append(Failure("intel.tcb_level", "collateral.qe_identity: no TCB level matches the QE's ISV SVN"))
    return None


def _platform(
    tcb_info: TcbInfo, quote: Quote, pck: PckExtensions, failures: list[str]
) -> tuple[str, tuple[str, ...]] | None:
    want_id = "TDX" if quote.kind == "tdx" else "SGX"
    if tcb_info.id != want_id or (quote.kind == "tdx" and tcb_info.version < 3):
        failures.append(
            Failure(
                "intel.tcb_info_platform",
                f"collateral.tcb_info is {tcb_info.id} v{tcb_info.version}, the quote needs {want_id}",
            )
        )
        return None
    if tcb_info.fmspc != pck.fmspc:
        failures.append(Failure("intel.tcb_info_platform", "collateral.tcb_info.fmspc differs from the PCK's FMSPC"))
    if tcb_info.pce_id != pck.pce_id:
        failures.append(Failure("intel.tcb_info_platform", "collateral.tcb_info.pceId differs from the PCK's PCE id"))
    tee = quote.body.tee_tcb_svn if isinstance(quote.body, TdReportBody) else None
    for level in ordered_levels(tcb_info.tcb_levels):
        if matches_platform_level(level, pck.tcb_components, pck.pce_svn, tee):
            return level.tcb_status, level.advisory_ids
    failures.append(
        Failure("intel.tcb_level", "collateral.tcb_info: no TCB level matches the platform (TCB not supported)")
    )
    return None


def _tcb(
    quote: Quote,
    pck: PckExtensions,
    *,
    collateral: Mapping[str, str],
    anchors: tuple[TrustAnchor, ...],
    now: dt.datetime,
    failures: list[str],
) -> tuple[str | None, tuple[str, ...], list[x509.Certificate]]:
    tcb_text, tcb_signer = _authentic_text(collateral, "tcb_info", anchors, now, failures)
    qe_text, qe_signer = _authentic_text(collateral, "qe_identity", anchors, now, failures)
    signers = [c for c in (tcb_signer, qe_signer) if c is not None]
    tcb_info = _parsed(parse_tcb_info, tcb_text, "tcb_info", now, failures)
    identity = _parsed(parse_qe_identity, qe_text, "qe_identity", now, failures)
    if tcb_info is None or identity is None:
        return None, (), signers
    platform = _platform(tcb_info, quote, pck, failures)
    module = _tdx_module(tcb_info, quote.body, failures) if isinstance(quote.body, TdReportBody) else None
    qe = _qe(identity, quote, failures)
    if platform is None or qe is None or (isinstance(quote.body, TdReportBody) and module is None):
        return None, (), signers
    status, advisories = platform[0], list(platform[1])
    for part in (module, qe):
        if part is not None:
            status = converge(status, part[0])
            advisories.extend(part[1])
    if status == "Revoked":
        failures.append(Failure("intel.tcb_revoked", "the platform's TCB status is Revoked"))
    return status, tuple(sorted(set(advisories))), signers


def _crls(
    collateral: Mapping[str, str],
    path: tuple[x509.Certificate, ...],
    anchor: TrustAnchor,
    *,
    signers: list[x509.Certificate],
    now: dt.datetime,
    failures: list[str],
) -> None:
    """Check the PCK CRL (issued by the leaf's issuer on the built ``path``) and the root CA CRL (issued by the
    root the path reached: on it, or the ``anchor`` itself) against the certificates each covers."""
    if len(path) < 2:
        failures.append(Failure("intel.pck_chain", "pck_chain: no PCK CA certificate to check revocation with"))
        return
    if der_sha256(path[-1]) == anchor.fingerprint:
        root, intermediates = path[-1], list(path[1:-1])
    else:  # the path's last certificate is signed by the anchor, which the chain does not carry
        root, intermediates = x509.load_der_x509_certificate(anchor.certificate_der), list(path[1:])
    for name, issuer, subjects in (
        ("pck_crl", path[1], [path[0]]),
        ("root_ca_crl", root, [*intermediates, *signers]),
    ):
        data = collateral.get(name)
        if not isinstance(data, str | bytes):
            failures.append(Failure("intel.crl", f"collateral.{name}: missing"))
            continue
        crl, crl_failures = verify_crl(data, issuer, now, what=f"collateral.{name}", check="intel.crl")
        failures.extend(crl_failures)
        if crl is None:
            continue
        for cert in subjects:
            if revoked(data, cert):
                failures.append(
                    Failure("intel.pck_revoked", f"{name_text(cert, 'subject')} is revoked by collateral.{name}")
                )


def check_quote(
    quote: Quote,
    anchors: tuple[TrustAnchor, ...],
    now: dt.datetime,
    collateral: Mapping[str, str] | None,
) -> QuoteCheck:
    """Runs every check listed in the module docstring; never raises for a failed check, only lists it.

    Raises :class:`EvidenceFormatError` when the embedded PCK chain does not decode.
    """
    failures: list[str] = []
    sig = quote.signature
    qe = sig.qe
    try:
        ak = public_key_from_point(sig.attestation_key, ec.SECP256R1())
    except ValueError:
        failures.append(Failure("intel.quote_signature", "quote.attestation_key is not a P-256 point"))
        ak = None
    if ak is not None and not ecdsa_valid(ak, quote.signed_bytes(), sig.signature):
        failures.append(Failure("intel.quote_signature", "quote signature does not verify with the attestation key"))
    expected = hashlib.sha256(sig.attestation_key + qe.qe_auth_data).digest() + bytes(32)
    if not hmac.compare_digest(expected, qe.qe_report.report_data):
        failures.append(
            Failure("intel.qe_binding", "qe_report.report_data does not bind the attestation key and QE auth data")
        )
    pems = qe.certification.pem_certificates()
    if not pems:
        failures.append(Failure("intel.pck_chain", "certification_data holds no PCK certificate chain (type 5)"))
        return QuoteCheck(None, None, (), tuple(failures), None)
    certs = _certs(pems, "certification_data.pck_chain")
    path, chain_failures = verify_path(certs, anchors, now, what="pck_chain", check="intel.pck_chain")
    anchor = path.anchor
    failures.extend(chain_failures)
    if not ecdsa_valid(certs[0], qe.qe_report.to_bytes(), qe.qe_report_signature):
        failures.append(Failure("intel.qe_report_signature", "qe_report signature does not verify with the PCK key"))
    pck = memo.pck_extensions(certs[0])
    status: str | None = None
    advisories: tuple[str, ...] = ()
    if collateral is None:
        failures.append(
            Failure(
                "intel.collateral_missing",
                f"no Intel collateral (TCB info, QE identity, CRLs) for FMSPC {pck.fmspc.hex().upper()}",
            )
        )
    elif anchor is not None:
        status, advisories, signers = _tcb(
            quote, pck, collateral=collateral, anchors=(anchor,), now=now, failures=failures
        )
        _crls(collateral, path.certificates, anchor, signers=signers, now=now, failures=failures)
    return QuoteCheck(anchor, status, advisories, tuple(failures), pck)
