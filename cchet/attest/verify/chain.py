"""Certificate chains: each certificate signed by the next, all valid at the verification time, ending at a
trusted root. Works for the ECDSA chains of Intel, NVIDIA and the simulator, and AMD's RSA-PSS chains.

A chain ends at a root when its last certificate hashes (SHA-256 of the DER) to an anchor's fingerprint (the
pinned bytes are the root, so its self-signature is not re-checked), or when it is issued by an anchor whose
certificate the options carry.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509

from cchet.attest.verify.failure import Failure
from cchet.attest.verify.options import TrustAnchor

__all__ = ["der_sha256", "issued_by", "verify_chain"]


def der_sha256(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, lowercase hex (memoised)."""
    from cchet.attest.verify.memo import fingerprint

    return fingerprint(cert)


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> str | None:
    """None when ``issuer`` signed ``cert`` (names and signature, RSA-PSS included), else why not
    (memoised: :func:`cchet.attest.verify.memo.issued_by`)."""
    from cchet.attest.verify.memo import issued_by as memo_issued_by

    return memo_issued_by(cert, issuer)


def verify_chain(
    certs: Sequence[x509.Certificate],
    anchors: Sequence[TrustAnchor],
    now: dt.datetime,
    *,
    what: str,
    check: str,
) -> tuple[TrustAnchor | None, list[str]]:
    """Checks ``certs`` (leaf first). Returns the anchor reached (None if none) and every failure found, each
    a :class:`Failure` of ``check``.

    Every link's signature, every issuer's CA flag and every certificate's validity window at ``now`` are
    checked independently. Not checked here: revocation (:mod:`cchet.attest.verify.crl`), path length, key
    usage and name constraints.
    """
    failures: list[str] = []
    if not certs:
        return None, [Failure(check, f"{what}: no certificates")]
    for i, cert in enumerate(certs):
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            state = "has expired" if now > cert.not_valid_after_utc else "is not yet valid"
            failures.append(
                Failure(
                    check,
                    f"{what}: certificate {i} ({cert.subject.rfc4514_string()}) {state} at {now.isoformat()} "
                    f"(valid {cert.not_valid_before_utc.isoformat()}..{cert.not_valid_after_utc.isoformat()})",
                )
            )
    for i in range(1, len(certs)):
        try:
            ca = certs[i].extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            ca = False
        if not ca:
            failures.append(Failure(check, f"{what}: certificate {i} issues certificate {i - 1} but is not a CA"))
    for i in range(len(certs) - 1):
        why = issued_by(certs[i], certs[i + 1])
        if why is not None:
            failures.append(Failure(check, f"{what}: certificate {i} is not signed by certificate {i + 1}: {why}"))
    last = certs[-1]
    fingerprint = der_sha256(last)
    for anchor in anchors:
        if anchor.fingerprint == fingerprint:  # the pinned bytes are the root: its self-signature adds nothing
            return anchor, failures
    for anchor in anchors:
        if anchor.certificate_der and issued_by(last, x509.load_der_x509_certificate(anchor.certificate_der)) is None:
            return anchor, failures
    failures.append(
        Failure(
            check,
            f"{what}: chain does not end at a trusted root (last: {last.subject.rfc4514_string()}, "
            f"SHA-256 {fingerprint[:16]}...)",
        )
    )
    return None, failures
