"""The Intel SGX TCB Signing certificate: the one certificate whose signature makes TCB info and QE identity
Intel's.

Every certificate under the Intel SGX Root CA can sign: the PCK CAs and each platform's PCK leaf too. A TCB
info re-signed with a PCK key still chains to the root, so a chain check alone would let the owner of one
platform rewrite its TCB status. Like Intel's QVL (``TCBInfoVerifier::verifyTCBCert``), verification
therefore requires the first certificate of a collateral issuer chain to be the TCB signing certificate:

- its subject carries exactly Intel's CN, O, L, ST and C (:data:`TCB_SIGNER_SUBJECT`; further attributes,
  such as the simulator's ``OU=SIMULATED``, are not compared);
- it is an end entity: key usage present with digitalSignature and without keyCertSign or cRLSign, and no
  CA basic constraint;
- the root issued it directly: at most one certificate follows it in the chain, and that one is the trust
  anchor reached (when none follows, the chain check has verified it against the anchor's certificate).

Not checked here: the chain's signatures and validity windows (:func:`cchet.attest.verify.chain.verify_chain`)
and revocation (the root CRL check of :mod:`cchet.attest.verify.dcap` covers the signer). A certificate that
passes is only as trustworthy as the chain and CRL checks that run beside this one.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.x509.oid import NameOID

from cchet.attest.formats.der import TAG_OID, encode_oid, tlv_span
from cchet.attest.verify import memo
from cchet.attest.verify.chain import der_sha256
from cchet.attest.verify.options import TrustAnchor
from cchet.errors import EvidenceFormatError

__all__ = ["TCB_SIGNER_SUBJECT", "tcb_signer_problems"]

TCB_SIGNER_SUBJECT: tuple[tuple[x509.ObjectIdentifier, str], ...] = (
    (NameOID.COMMON_NAME, "Intel SGX TCB Signing"),
    (NameOID.ORGANIZATION_NAME, "Intel Corporation"),
    (NameOID.LOCALITY_NAME, "Santa Clara"),
    (NameOID.STATE_OR_PROVINCE_NAME, "CA"),
    (NameOID.COUNTRY_NAME, "US"),
)
"""The subject attributes of Intel's TCB signing certificate, each of which must occur exactly once."""


_SUBJECT_DER = x509.Name([x509.NameAttribute(oid, value) for oid, value in TCB_SIGNER_SUBJECT]).public_bytes()
"""Intel's TCB signing subject as Intel encodes it (its real certificate carries exactly these bytes)."""


def _rdns(name_der: bytes) -> list[bytes]:
    """Each relative distinguished name (SET) of a Name's DER, as its whole DER element."""
    _, pos, end = tlv_span(name_der, field="subject")
    if end != len(name_der):
        raise EvidenceFormatError("bytes after the name", field="subject")
    out = []
    while pos < end:
        _, _, rdn_end = tlv_span(name_der, pos, field="subject.rdn")
        out.append(name_der[pos:rdn_end])
        pos = rdn_end
    return out


_SUBJECT_RDNS = frozenset(_rdns(_SUBJECT_DER))
_SUBJECT_OIDS = frozenset(encode_oid(oid.dotted_string)[2:] for oid, _ in TCB_SIGNER_SUBJECT)  # contents


def _encoded_as_intel(subject_der: bytes) -> bool:
    """Whether the subject holds each of Intel's five attributes exactly once, encoded as Intel encodes it,
    and any other attribute (the simulator's ``OU=SIMULATED``) in single-valued RDNs of other types: decided
    on the DER, without building the name. False when unsure (the caller then compares the decoded name)."""
    rdns = _rdns(subject_der)
    if len(rdns) - len(set(rdns)) or len(_SUBJECT_RDNS.intersection(rdns)) != len(_SUBJECT_RDNS):
        return False
    for rdn in rdns:
        if rdn in _SUBJECT_RDNS:
            continue
        _, attribute, rdn_end = tlv_span(rdn, field="subject.rdn")
        _, oid, attribute_end = tlv_span(rdn, attribute, field="subject.rdn")
        if attribute_end != rdn_end:  # more than one attribute in the RDN
            return False
        tag, oid_start, oid_end = tlv_span(rdn, oid, field="subject.attribute")
        if tag != TAG_OID or rdn[oid_start:oid_end] in _SUBJECT_OIDS:
            return False
    return True


def _subject_problem(cert: x509.Certificate) -> str | None:
    subject_der = memo.identity(cert).subject
    try:
        if subject_der == _SUBJECT_DER or _encoded_as_intel(subject_der):
            return None
    except (EvidenceFormatError, ValueError):
        pass  # an encoding the fast path does not follow: the decoded name decides
    try:
        subject = cert.subject
        found: dict[x509.ObjectIdentifier, list[str | bytes]] = {}
        for attribute in subject:
            found.setdefault(attribute.oid, []).append(attribute.value)
    except (ValueError, TypeError):  # decoded on first access: a changed byte in the name surfaces here
        return "its subject does not decode"
    if any(found.get(oid) != [want] for oid, want in TCB_SIGNER_SUBJECT):
        return f"subject {subject.rfc4514_string()} is not Intel's TCB signing subject"
    return None


def _usage_problem(cert: x509.Certificate) -> str | None:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return "it has no key usage"
    if not usage.digital_signature or usage.key_cert_sign or usage.crl_sign:
        return "its key usage is not digital signature only (a signing end entity)"
    return "it is a CA" if memo.identity(cert).ca else None


def tcb_signer_problems(chain: Sequence[x509.Certificate], anchor: TrustAnchor | None) -> list[str]:
    """Why ``chain[0]`` is not Intel's TCB signing certificate issued directly by the root ``anchor`` (the
    anchor :func:`~cchet.attest.verify.chain.verify_chain` reached for ``chain``, None when it reached none);
    an empty list when it is. Each problem is a phrase to follow "certificate 0 ... is not the TCB signing
    certificate: ". Raises ``ValueError`` for an empty chain."""
    if not chain:
        raise ValueError("tcb_signer_problems needs at least the signing certificate")
    signer, above = chain[0], chain[1:]
    problems = list(
        memo.per_certificate(
            "tcb_signer", signer, lambda: tuple(p for p in (_subject_problem(signer), _usage_problem(signer)) if p)
        )
    )
    if len(above) > 1 or (above and anchor is not None and der_sha256(above[0]) != anchor.fingerprint):
        problems.append("the root did not issue it directly (another certificate stands between them)")
    return problems
