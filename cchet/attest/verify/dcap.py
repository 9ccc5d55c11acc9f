"""Checks of a DCAP quote: signatures, the QE binding, the PCK chain, and TCB status from collateral.

Every check runs and reports independently. What is checked: the quote signature by the attestation key;
the QE report signature by the PCK key; QE report data = SHA-256(attestation key || QE auth data) || zeros;
the PCK chain to an Intel anchor; the TCB info and QE identity signatures by a TCB signing certificate
chained to the same anchor, their validity window, FMSPC and PCE id; and Intel's TCB level matching (SGX
components and PCE SVN from the PCK certificate, TDX components from TEE_TCB_SVN, the TDX module identity,
the QE identity). Not checked here: CRLs (the real-verification issue adds them).
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

from cchet.attest.formats.certchain import load_certificate, parse_pem_chain
from cchet.attest.formats.dcap import Quote, TdReportBody
from cchet.attest.formats.pck import PckExtensions, parse_pck_extensions
from cchet.attest.rawsig import public_key_from_point
from cchet.attest.verify.chain import verify_chain
from cchet.attest.verify.ecdsa import ecdsa_valid
from cchet.attest.verify.options import TrustAnchor
from cchet.errors import EvidenceFormatError

__all__ = ["STATUS_ORDER", "QuoteCheck", "check_quote", "worst_status"]

STATUS_ORDER = (
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "Revoked",
)


def worst_status(*statuses: str) -> str:
    """The least trustworthy of the statuses, by :data:`STATUS_ORDER` (unknown names count as Revoked)."""
    rank = {s: i for i, s in enumerate(STATUS_ORDER)}
    return max(statuses, key=lambda s: rank.get(s, len(STATUS_ORDER)))


@dataclass(frozen=True)
class QuoteCheck:
    """What checking a quote found: the anchor reached, TCB status and advisories, and every failure."""

    anchor: TrustAnchor | None
    tcb_status: str | None
    advisory_ids: tuple[str, ...]
    failures: tuple[str, ...]
    pck: PckExtensions | None


def _certs(pems: tuple[bytes, ...], what: str) -> list[x509.Certificate]:
    return [load_certificate(p, field=f"{what}[{i}]") for i, p in enumerate(pems)]


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def _signed_json(
    collateral: Mapping[str, str],
    name: str,
    anchors: tuple[TrustAnchor, ...],
    now: dt.datetime,
    failures: list[str],
) -> dict[str, Any] | None:
    text = collateral.get(name, "")
    chain_pem = collateral.get(f"{name}_issuer_chain", "").encode()
    try:
        chain = parse_pem_chain(chain_pem).certificates()
        sig = bytes.fromhex(collateral.get(f"{name}_signature", ""))
        doc = json.loads(text)
    except (EvidenceFormatError, ValueError) as e:
        failures.append(f"collateral.{name}: malformed: {e}")
        return None
    _anchor, chain_failures = verify_chain(chain, anchors, now, what=f"collateral.{name}_issuer_chain")
    failures.extend(chain_failures)
    if not ecdsa_valid(chain[0], text.encode(), sig):
        failures.append(f"collateral.{name}: signature does not verify with the TCB signing certificate")
    if not isinstance(doc, dict):
        failures.append(f"collateral.{name}: not a JSON object")
        return None
    try:
        if not _parse_time(doc["issueDate"]) <= now <= _parse_time(doc["nextUpdate"]):
            failures.append(
                f"collateral.{name}: not valid at {now.isoformat()} ({doc['issueDate']}..{doc['nextUpdate']})"
            )
    except (KeyError, TypeError, ValueError):
        failures.append(f"collateral.{name}: missing or malformed issueDate/nextUpdate")
    return doc


def _svns(items: Any) -> list[int]:
    return [int(c["svn"]) for c in items]


def _platform_level(tcb_info: dict[str, Any], pck: PckExtensions, quote: Quote) -> tuple[str, tuple[str, ...]] | None:
    body = quote.body
    for level in tcb_info.get("tcbLevels", []):
        tcb = level["tcb"]
        sgx = _svns(tcb["sgxtcbcomponents"])
        if any(have < need for have, need in zip(pck.tcb_components, sgx, strict=False)) or len(sgx) != 16:
            continue
        if pck.pce_svn < int(tcb["pcesvn"]):
            continue
        if isinstance(body, TdReportBody):
            tdx = _svns(tcb.get("tdxtcbcomponents", []))
            if len(tdx) != 16 or any(have < need for have, need in zip(body.tee_tcb_svn, tdx, strict=True)):
                continue
        return str(level["tcbStatus"]), tuple(level.get("advisoryIDs", ()))
    return None


def _module_status(tcb_info: dict[str, Any], body: TdReportBody) -> tuple[str, tuple[str, ...]] | None:
    if body.tee_tcb_svn[1] == 0:
        return "UpToDate", ()
    wanted = f"TDX_{body.tee_tcb_svn[1]:02X}"
    for ident in tcb_info.get("tdxModuleIdentities", []):
        if ident.get("id") != wanted:
            continue
        for level in ident.get("tcbLevels", []):
            if body.tee_tcb_svn[0] >= int(level["tcb"]["isvsvn"]):
                return str(level["tcbStatus"]), tuple(level.get("advisoryIDs", ()))
        return None
    return None


def _qe_status(identity: dict[str, Any], quote: Quote, failures: list[str]) -> tuple[str, tuple[str, ...]] | None:
    qe = quote.signature.qe.qe_report
    if bytes.fromhex(identity.get("mrsigner", "")) != qe.mr_signer:
        failures.append("qe_report.mr_signer does not match the QE identity")
    if int(identity.get("isvprodid", -1)) != qe.isv_prod_id:
        failures.append("qe_report.isv_prod_id does not match the QE identity")
    mask = int(identity.get("miscselectMask", "0"), 16)
    if qe.misc_select & mask != int(identity.get("miscselect", "0"), 16) & mask:
        failures.append("qe_report.misc_select does not match the QE identity")
    amask = bytes.fromhex(identity.get("attributesMask", "00" * 16))
    want = bytes.fromhex(identity.get("attributes", "00" * 16))
    if bytes(a & m for a, m in zip(qe.attributes, amask, strict=False)) != bytes(
        a & m for a, m in zip(want, amask, strict=False)
    ):
        failures.append("qe_report.attributes do not match the QE identity")
    for level in identity.get("tcbLevels", []):
        if qe.isv_svn >= int(level["tcb"]["isvsvn"]):
            return str(level["tcbStatus"]), tuple(level.get("advisoryIDs", ()))
    return None


def _tcb(
    quote: Quote,
    pck: PckExtensions,
    *,
    collateral: Mapping[str, str],
    anchors: tuple[TrustAnchor, ...],
    now: dt.datetime,
    failures: list[str],
) -> tuple[str | None, tuple[str, ...]]:
    tcb_info = _signed_json(collateral, "tcb_info", anchors, now, failures)
    identity = _signed_json(collateral, "qe_identity", anchors, now, failures)
    if tcb_info is None or identity is None:
        return None, ()
    try:
        if bytes.fromhex(tcb_info["fmspc"]) != pck.fmspc:
            failures.append("collateral.tcb_info.fmspc does not match the PCK certificate's FMSPC")
        if bytes.fromhex(tcb_info["pceId"]) != pck.pce_id:
            failures.append("collateral.tcb_info.pceId does not match the PCK certificate's PCE id")
        results = []
        platform = _platform_level(tcb_info, pck, quote)
        if platform is None:
            failures.append("collateral.tcb_info: no TCB level matches the platform (TCB not supported)")
        else:
            results.append(platform)
        if isinstance(quote.body, TdReportBody):
            module = _module_status(tcb_info, quote.body)
            if module is None:
                failures.append("collateral.tcb_info: no TDX module identity level matches TEE_TCB_SVN")
            else:
                results.append(module)
        qe = _qe_status(identity, quote, failures)
        if qe is None:
            failures.append("collateral.qe_identity: no TCB level matches the QE's ISV SVN")
        else:
            results.append(qe)
    except (KeyError, TypeError, ValueError) as e:
        failures.append(f"collateral: malformed TCB info or QE identity: {e!r}")
        return None, ()
    if platform is None or not results:
        return None, ()
    advisories = tuple(sorted({a for _s, adv in results for a in adv}))
    return worst_status(*(s for s, _a in results)), advisories


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
        failures.append("quote.attestation_key is not a P-256 point")
        ak = None
    if ak is not None and not ecdsa_valid(ak, quote.signed_bytes(), sig.signature):
        failures.append("quote signature does not verify with the attestation key")
    expected = hashlib.sha256(sig.attestation_key + qe.qe_auth_data).digest() + bytes(32)
    if not hmac.compare_digest(expected, qe.qe_report.report_data):
        failures.append("qe_report.report_data does not bind the attestation key and QE auth data")
    pems = qe.certification.pem_certificates()
    if not pems:
        failures.append("certification_data holds no PCK certificate chain (type 5)")
        return QuoteCheck(None, None, (), tuple(failures), None)
    certs = _certs(pems, "certification_data.pck_chain")
    anchor, chain_failures = verify_chain(certs, anchors, now, what="pck_chain")
    failures.extend(chain_failures)
    if not ecdsa_valid(certs[0], qe.qe_report.to_bytes(), qe.qe_report_signature):
        failures.append("qe_report signature does not verify with the PCK certificate")
    pck = parse_pck_extensions(certs[0])
    status: str | None = None
    advisories: tuple[str, ...] = ()
    if collateral is None:
        failures.append(f"no Intel collateral (TCB info, QE identity) for FMSPC {pck.fmspc.hex().upper()}")
    elif anchor is not None:
        status, advisories = _tcb(quote, pck, collateral=collateral, anchors=(anchor,), now=now, failures=failures)
    return QuoteCheck(anchor, status, advisories, tuple(failures), pck)
