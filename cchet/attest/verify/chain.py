"""Certificate chains: each certificate signed by the next, all valid at the verification time, ending at an
anchor. Works for the ECDSA chains of Intel, NVIDIA and the simulator, and AMD's RSA-PSS chains."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from cchet.attest.verify.options import TrustAnchor

__all__ = ["verify_chain"]


def verify_chain(
    certs: Sequence[x509.Certificate], anchors: Sequence[TrustAnchor], now: dt.datetime, *, what: str
) -> tuple[TrustAnchor | None, list[str]]:
    """Checks ``certs`` (leaf first). Returns the anchor reached (None if none) and every failure found.

    The last certificate must be byte-identical to an anchor, or be issued by one. Every link's signature,
    every issuer's CA flag and every certificate's validity window at ``now`` are checked independently.
    Not checked: revocation, path length, key usage and name constraints (the real verifiers add them).
    """
    failures: list[str] = []
    if not certs:
        return None, [f"{what}: no certificates"]
    for i, cert in enumerate(certs):
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            failures.append(
                f"{what}: certificate {i} ({cert.subject.rfc4514_string()}) "
                f"is not valid at {now.isoformat()} "
                f"(valid {cert.not_valid_before_utc.isoformat()}..{cert.not_valid_after_utc.isoformat()})"
            )
    for i in range(1, len(certs)):
        try:
            ca = certs[i].extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            ca = False
        if not ca:
            failures.append(f"{what}: certificate {i} issues certificate {i - 1} but is not a CA")
    for i in range(len(certs) - 1):
        try:
            certs[i].verify_directly_issued_by(certs[i + 1])
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as e:
            failures.append(f"{what}: certificate {i} is not signed by certificate {i + 1}: {e or 'bad signature'}")
    last = certs[-1]
    last_der = last.public_bytes(serialization.Encoding.DER)
    for anchor in anchors:
        if anchor.certificate_der == last_der:
            return anchor, failures
    for anchor in anchors:
        root = x509.load_der_x509_certificate(anchor.certificate_der)
        try:
            last.verify_directly_issued_by(root)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            continue
        return anchor, failures
    failures.append(f"{what}: chain does not end at a trusted root (last: {last.subject.rfc4514_string()})")
    return None, failures
