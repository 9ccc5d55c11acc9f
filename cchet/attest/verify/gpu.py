"""Checks of an NVIDIA GPU report: the device chain, the SPDM signature and the FWID.

What is checked: the path from the PEM chain's first certificate (the device leaf) through the others, in
any order, to an NVIDIA anchor (:func:`~cchet.attest.verify.chain.verify_chain`); the ECDSA P-384
signature r||s over SHA-384 of request || response-before-signature by the leaf; that the leaf certificate
certifies the report's FWID (extension 2.23.133.5.4.1 on Hopper, DICE TcbInfo 2.23.133.5.4.1.1 on
Blackwell), when the report carries one (drivers before R550 do not); and, when ``expected_nonce`` is given,
the SPDM request nonce. Measurements against RIMs are :mod:`cchet.attest.verify.rim`. Not checked: OCSP (no
responses are available offline). In composite evidence the nonce is the binding's job
(:func:`cchet.attest.binding.gpu_nonce`), checked during appraisal. The chain holds at most
:data:`~cchet.attest.formats.certchain.MAX_CERTIFICATES` certificates of at most
:data:`~cchet.attest.formats.certchain.MAX_CERTIFICATE_BYTES` each (``EvidenceFormatError`` otherwise).
"""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import dataclass

from cryptography import x509

from cchet.attest.formats.der import children
from cchet.attest.formats.spdm import SpdmReport
from cchet.attest.verify import memo
from cchet.attest.verify.chain import verify_chain
from cchet.attest.verify.ecdsa import ecdsa_valid
from cchet.attest.verify.failure import Failure
from cchet.attest.verify.options import TrustAnchor
from cchet.errors import EvidenceFormatError

__all__ = ["FWID_OID", "TCB_INFO_OID", "GpuCheck", "check_gpu", "leaf_fwids"]

FWID_OID = "2.23.133.5.4.1"
TCB_INFO_OID = "2.23.133.5.4.1.1"


def _octet_strings(value: bytes, out: set[bytes], depth: int = 0) -> None:
    if depth > 8:
        return
    try:
        items = children(value)
    except EvidenceFormatError:
        return
    for item in items:
        if item.tag == 0x04 and len(item.value) == 48:
            out.add(item.value)
        elif item.tag & 0x20:
            _octet_strings(item.value, out, depth + 1)


def leaf_fwids(cert: x509.Certificate) -> set[bytes]:
    """FWIDs a device leaf certifies: the last 48 bytes of the Hopper-style extension 2.23.133.5.4.1, or the
    48-byte digests inside a DICE TcbInfo (2.23.133.5.4.1.1) as Blackwell leaves carry."""
    out: set[bytes] = set()
    for ext in cert.extensions:
        if not isinstance(ext.value, x509.UnrecognizedExtension):
            continue
        if ext.oid.dotted_string == FWID_OID and len(ext.value.value) >= 48:
            out.add(ext.value.value[-48:])
        elif ext.oid.dotted_string == TCB_INFO_OID:
            _octet_strings(ext.value.value, out)
    return out


@dataclass(frozen=True)
class GpuCheck:
    anchor: TrustAnchor | None
    failures: tuple[str, ...]


def check_gpu(
    report: SpdmReport,
    certificates: bytes,
    anchors: tuple[TrustAnchor, ...],
    now: dt.datetime,
    *,
    what: str,
    expected_nonce: bytes | None = None,
) -> GpuCheck:
    """Runs every check in the module docstring and lists each failure; raises
    :class:`~cchet.errors.EvidenceFormatError` when the certificates do not decode or exceed the limits."""
    failures: list[str] = []
    certs = list(memo.certificates(certificates))
    anchor, chain_failures = verify_chain(certs, anchors, now, what=f"{what}.cert_chain", check="nvidia.chain")
    failures.extend(chain_failures)
    if not report.response.signature:
        failures.append(Failure("nvidia.spdm_signature", f"{what}: report is unsigned"))
    elif not ecdsa_valid(certs[0], report.signed_bytes(), report.response.signature):
        failures.append(
            Failure("nvidia.spdm_signature", f"{what}: SPDM signature does not verify with the device leaf certificate")
        )
    cert_fwids = leaf_fwids(certs[0])
    if report.fwid is None:
        pass  # pre-R550 reports carry no FWID opaque field; nothing to compare
    elif not cert_fwids:
        failures.append(Failure("nvidia.fwid", f"{what}: leaf certificate has no FWID extension"))
    elif report.fwid not in cert_fwids:
        failures.append(Failure("nvidia.fwid", f"{what}: report FWID differs from the leaf certificate's FWID"))
    if expected_nonce is not None and not hmac.compare_digest(expected_nonce, report.request.nonce):
        failures.append(
            Failure(
                "nvidia.nonce",
                f"{what}: SPDM request nonce is {report.request.nonce.hex()}, expected {expected_nonce.hex()}",
            )
        )
    return GpuCheck(anchor, tuple(failures))
