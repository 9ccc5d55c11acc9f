"""Checks of a DCAP quote (TDX v4/v5, SGX v3): signatures, the QE binding, the PCK chain and its CRLs, the
TCB info and QE identity, and Intel's TCB status.

Every check runs and reports independently (each failure a :class:`~cchet.attest.verify.failure.Failure`
naming its check in :data:`~cchet.attest.verify.checks.CHECKS`). What is checked: the quote signature by
the attestation key; the QE report signature by the PCK key; QE report data = SHA-256(attestation key || QE
auth data) || zeros; the PCK chain to an Intel anchor; the PCK CRL (signed by the PCK CA) and root CRL
(signed by the root), current, not listing the PCK leaf, the PCK CA or the TCB signing certificate; the TCB
info and QE identity signatures by a TCB signing certificate chained to the same anchor, their validity
window, id, version, FMSPC and PCE id; the QE identity (MRSIGNER, ISV PRODID, MISCSELECT and ATTRIBUTES
under their masks); the TDX module identity; and Intel's TCB status (:mod:`cchet.attest.verify.tcb_status`),
where no matching level, or a Revoked one, is a failure. What is not: measurements and debug bits (policy).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from cchet.attest.formats.dcap import Quote, TdReportBody
from cchet.attest.formats.pck import PckExtensions
from cchet.attest.rawsig import public_key_from_point
from cchet.attest.verify import memo
from cchet.attest.verify.chain import verify_chain
from cchet.attest.verify.crl import revoked, verify_crl
from cchet.attest.verify.ecdsa import ecdsa_valid
from cchet.attest.verify.failure import Failure
from cchet.attest.verify.options import TrustAnchor
from cchet.attest.verify.tcb_status import (
    STATUS_ORDER,
    converge,
    matches_platform_level,
    ordered_levels,
    worst_status,
)
from cchet.errors import EvidenceFormatError

__all__ = ["STATUS_ORDER", "QuoteCheck", "check_quote", "worst_status"]


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


def _parse_time(text: str) -> dt.datetime:
    """``YYYY-MM-DDTHH:MM:SSZ`` (Intel's collateral dates); raises ``ValueError`` otherwise."""
    if len(text) != 20 or not text.endswith("Z") or text[10] != "T":
        raise ValueError(f"not a UTC timestamp: {text!r}")
    return dt.datetime.fromisoformat(text[:-1]).replace(tzinfo=dt.UTC)


def _signed_json(
    collateral: Mapping[str, str],
    name: str,
    anchors: tuple[TrustAnchor, ...],
    now: dt.datetime,
    failures: list[str],
) -> tuple[dict[str, Any] | None, x509.Certificate | None]:
    text = collateral.get(name, "")
    chain_pem = collateral.get(f"{name}_issuer_chain", "").encode()
    try:
        chain = list(memo.certificates(chain_pem))
        sig = bytes.fromhex(collateral.get(f"{name}_signature", ""))
        doc = json.loads(text)
    except (EvidenceFormatError, ValueError) as e:
        failures.append(Failure("intel.collateral_missing", f"collateral.{name}: malformed: {e}"))
        return None, None
    if not chain:
        failures.append(Failure(f"intel.{name}_chain", f"collateral.{name}_issuer_chain: no certificates"))
        return None, None
    _anchor, chain_failures = verify_chain(
        chain, anchors, now, what=f"collateral.{name}_issuer_chain", check=f"intel.{name}_chain"
    )
    failures.extend(chain_failures)
    if not ecdsa_valid(chain[0], text.encode(), sig):
        failures.append(
            Failure(f"intel.{name}_signature", f"collateral.{name}: signature does not verify with the TCB signing key")
        )
    if not isinstance(doc, dict):
        failures.append(Failure("intel.collateral_missing", f"collateral.{name}: not a JSON object"))
        return None, chain[0]
    try:
        issued, next_update = _parse_time(doc["issueDate"]), _parse_time(doc["nextUpdate"])
    except (KeyError, TypeError, ValueError):
        failures.append(
            Failure(f"intel.{name}_validity", f"collateral.{name}: missing or malformed issueDate/nextUpdate")
        )
    else:
        if not issued <= now <= next_update:
            state = "expired" if now > next_update else "not yet valid"
            failures.append(
                Failure(
                    f"intel.{name}_validity",
                    f"collateral.{name}: not valid at {now.isoformat()}, {state} "
                    f"({doc['issueDate']}..{doc['nextUpdate']})",
                )
            )
    return doc, chain[0]


def _masked(value: bytes, mask: bytes) -> bytes:
    return bytes(a & m for a, m in zip(value, mask, strict=False))


_IDENTITY_STATUSES = ("UpToDate", "OutOfDate", "Revoked")


def _identity_status(level: dict[str, Any], what: str, failures: list[str]) -> tuple[str, tuple[str, ...]] | None:
    """A QE or TDX module level's status, which can only be UpToDate, OutOfDate or Revoked."""
    status = str(level["tcbStatus"])
    if status not in _IDENTITY_STATUSES:
        failures.append(Failure("intel.tcb_level", f"{what}: TCB status {status!r} is not one an identity can have"))
        return None
    return status, tuple(level.get("advisoryIDs", ()))


def _tdx_module(
    tcb_info: dict[str, Any], body: TdReportBody, failures: list[str]
) -> tuple[str, tuple[str, ...]] | None:
    """The TDX module's status and advisories (None when no level matches, listed as a failure)."""
    version = body.tee_tcb_svn[1]
    if version == 0:  # TDX 1.0 modules: judged by tcb_info.tdxModule and the platform's TDX components
        base = tcb_info.get("tdxModule")
        if isinstance(base, dict):
            if bytes.fromhex(base["mrsigner"]) != body.mr_signer_seam:
                failures.append(
                    Failure("intel.tdx_module", "td_report.mr_signer_seam does not match tcb_info.tdxModule")
                )
            mask = bytes.fromhex(base["attributesMask"])
            if _masked(body.seam_attributes, mask) != _masked(bytes.fromhex(base["attributes"]), mask):
                failures.append(
                    Failure("intel.tdx_module", "td_report.seam_attributes do not match tcb_info.tdxModule")
                )
        return "UpToDate", ()
    wanted = f"TDX_{version:02X}"
    for ident in tcb_info.get("tdxModuleIdentities", []):
        if ident.get("id") != wanted:
            continue
        if bytes.fromhex(ident["mrsigner"]) != body.mr_signer_seam:
            failures.append(Failure("intel.tdx_module", f"td_report.mr_signer_seam does not match {wanted}"))
        mask = bytes.fromhex(ident["attributesMask"])
        if _masked(body.seam_attributes, mask) != _masked(bytes.fromhex(ident["attributes"]), mask):
            failures.append(Failure("intel.tdx_module", f"td_report.seam_attributes do not match {wanted}"))
        for level in ident.get("tcbLevels", []):
            if body.tee_tcb_svn[0] >= int(level["tcb"]["isvsvn"]):
                return _identity_status(level, wanted, failures)
        failures.append(Failure("intel.tcb_level", f"tcb_info: no {wanted} level matches TDX module SVN"))
        return None
    failures.append(Failure("intel.tdx_module", f"tcb_info has no TDX module identity {wanted}"))
    return None


def _qe(identity: dict[str, Any], quote: Quote, failures: list[str]) -> tuple[str, tuple[str, ...]] | None:
    qe = quote.signature.qe.qe_report
    want_id = "TD_QE" if quote.kind == "tdx" else "QE"
    if identity.get("id") != want_id:
        failures.append(
            Failure("intel.qe_identity", f"collateral.qe_identity.id is {identity.get('id')!r}, not {want_id}")
        )
    if bytes.fromhex(identity["mrsigner"]) != qe.mr_signer:
        failures.append(Failure("intel.qe_identity", "qe_report.mr_signer does not match the QE identity"))
    if int(identity["isvprodid"]) != qe.isv_prod_id:
        failures.append(Failure("intel.qe_identity", "qe_report.isv_prod_id does not match the QE identity"))
    mask = int(identity["miscselectMask"], 16)
    if qe.misc_select & mask != int(identity["miscselect"], 16) & mask:
        failures.append(Failure("intel.qe_identity", "qe_report.misc_select does not match the QE identity"))
    amask = bytes.fromhex(identity["attributesMask"])
    if _masked(qe.attributes, amask) != _masked(bytes.fromhex(identity["attributes"]), amask):
        failures.append(Failure("intel.qe_identity", "qe_report.attributes do not match the QE identity"))
    for level in identity.get("tcbLevels", []):
        if qe.isv_svn >= int(level["tcb"]["isvsvn"]):
            return _identity_status(level, "QE identity", failures)
    failures.append(Failure("intel.tcb_level", "collateral.qe_identity: no TCB level matches the QE's ISV SVN"))
    return None


def _platform(
    tcb_info: dict[str, Any], quote: Quote, pck: PckExtensions, failures: list[str]
) -> tuple[str, tuple[str, ...]] | None:
    want_id = "TDX" if quote.kind == "tdx" else "SGX"
    if tcb_info.get("id", "SGX") != want_id or (quote.kind == "tdx" and int(tcb_info.get("version", 0)) < 3):
        failures.append(
            Failure(
                "intel.tcb_info_platform",
                f"collateral.tcb_info is {tcb_info.get('id', 'SGX')} v{tcb_info.get('version')}, "
                f"the quote needs {want_id}",
            )
        )
        return None
    if bytes.fromhex(tcb_info["fmspc"]) != pck.fmspc:
        failures.append(Failure("intel.tcb_info_platform", "collateral.tcb_info.fmspc differs from the PCK's FMSPC"))
    if bytes.fromhex(tcb_info["pceId"]) != pck.pce_id:
        failures.append(Failure("intel.tcb_info_platform", "collateral.tcb_info.pceId differs from the PCK's PCE id"))
    tee = quote.body.tee_tcb_svn if isinstance(quote.body, TdReportBody) else None
    for level in ordered_levels(tcb_info.get("tcbLevels", [])):
        if matches_platform_level(level, pck.tcb_components, pck.pce_svn, tee):
            return str(level["tcbStatus"]), tuple(level.get("advisoryIDs", ()))
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
    tcb_info, tcb_signer = _signed_json(collateral, "tcb_info", anchors, now, failures)
    identity, qe_signer = _signed_json(collateral, "qe_identity", anchors, now, failures)
    signers = [c for c in (tcb_signer, qe_signer) if c is not None]
    if tcb_info is None or identity is None:
        return None, (), signers
    try:
        platform = _platform(tcb_info, quote, pck, failures)
        module = _tdx_module(tcb_info, quote.body, failures) if isinstance(quote.body, TdReportBody) else None
        qe = _qe(identity, quote, failures)
    except (KeyError, TypeError, ValueError) as e:
        failures.append(Failure("intel.tcb_info_platform", f"collateral: malformed TCB info or QE identity: {e!r}"))
        return None, (), signers
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
    certs: list[x509.Certificate],
    signers: list[x509.Certificate],
    now: dt.datetime,
    failures: list[str],
) -> None:
    if len(certs) < 2:
        failures.append(Failure("intel.pck_chain", "pck_chain: no PCK CA certificate to check revocation with"))
        return
    for name, issuer, subjects in (
        ("pck_crl", certs[1], [certs[0]]),
        ("root_ca_crl", certs[-1], [*certs[1:-1], *signers]),
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
                    Failure("intel.pck_revoked", f"{cert.subject.rfc4514_string()} is revoked by collateral.{name}")
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
    anchor, chain_failures = verify_chain(certs, anchors, now, what="pck_chain", check="intel.pck_chain")
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
        _crls(collateral, certs, signers, now, failures)
    return QuoteCheck(anchor, status, advisories, tuple(failures), pck)
