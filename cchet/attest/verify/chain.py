"""Certification paths: from a leaf, through the certificates offered with it in any order, to a trusted root.
Works for the ECDSA chains of Intel, NVIDIA and the simulator, and AMD's RSA-PSS chains.

Building (:func:`build_path`). The first certificate given is the leaf; the others are an unordered pool
(duplicates and certificates that issue nothing on the path are ignored). From the leaf, each step takes as
issuer a pool certificate whose subject is the current certificate's issuer name and, when both carry one,
whose subject key identifier is its authority key identifier, preferring one whose signature verifies, then
the pool's order; it never goes back to try another. The path ends at the first certificate whose SHA-256
matches an anchor's fingerprint (the pinned bytes are the root, so its self-signature is not re-checked), or
at a certificate that an anchor carried by the options signed (the anchor's certificate is not put on the
path), or at a self-issued certificate (a root nobody trusts). It stops short, saying why, when no
certificate in the pool can be the issuer (missing issuer), when every one that could is already on the path
(a loop), or when it would grow beyond :data:`MAX_PATH_LENGTH` certificates.

Checking (:func:`verify_path`, :func:`verify_chain`). On the path built, independently: every certificate's
validity window at the verification time, the CA flag of every issuer, every signature, and that it ends at
a trusted root. Not checked here: revocation (:mod:`cchet.attest.verify.crl`), path length constraints, key
usage and name constraints.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509

from cchet.attest.formats.certchain import CertificateIdentity, name_text
from cchet.attest.verify import memo
from cchet.attest.verify.failure import Failure
from cchet.attest.verify.options import RAW_ROOT_VENDORS, TrustAnchor

__all__ = ["MAX_PATH_LENGTH", "CertificationPath", "build_path", "der_sha256", "verify_chain", "verify_path"]

MAX_PATH_LENGTH = 6
"""The most certificates a path may hold, leaf and root included; real paths hold at most 5 (NVIDIA's)."""


def der_sha256(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, lowercase hex (:func:`cchet.attest.verify.memo.fingerprint`)."""
    return memo.fingerprint(cert)


@dataclass(frozen=True)
class CertificationPath:
    """A path built by :func:`build_path`: ``certificates`` from the leaf up, each named as issuer by the one
    before it (signatures are not vouched for: :func:`verify_path` checks them); ``anchor`` the trust anchor
    it ends at (None when it ends at none); ``problem`` why it stopped short of one (None when it reached an
    anchor or ended at an untrusted self-issued root)."""

    certificates: tuple[x509.Certificate, ...]
    anchor: TrustAnchor | None
    problem: str | None


def _subject(cert: x509.Certificate) -> str:
    return name_text(cert, "subject")


def _issuing_anchor(
    cert: x509.Certificate, ident: CertificateIdentity, anchors: Sequence[TrustAnchor]
) -> TrustAnchor | None:
    for anchor in anchors:
        if not anchor.certificate_der or anchor.vendor in RAW_ROOT_VENDORS:  # not X.509: another family's root
            continue
        root = x509.load_der_x509_certificate(anchor.certificate_der)  # from the options: trusted, not capped
        if ident.may_be_issued_by(memo.identity(root)) and memo.issued_by(cert, root) is None:
            return anchor
    return None


def build_path(certs: Sequence[x509.Certificate], anchors: Sequence[TrustAnchor]) -> CertificationPath:
    """The path from ``certs[0]`` through the pool ``certs[1:]`` to one of ``anchors``, built as the module
    docstring says. Never raises for what the certificates are; an empty ``certs`` is a path with a problem."""
    if not certs:
        return CertificationPath((), None, "no certificates")
    pinned: dict[str, TrustAnchor] = {}
    for a in anchors:
        pinned.setdefault(a.fingerprint, a)
    leaf = memo.identity(certs[0])
    pool: dict[bytes, tuple[x509.Certificate, CertificateIdentity]] = {}
    for cert in certs[1:]:
        ident = memo.identity(cert)
        if ident.fingerprint != leaf.fingerprint:
            pool.setdefault(ident.fingerprint, (cert, ident))
    path = [certs[0]]
    on_path = {leaf.fingerprint}
    cert, ident = certs[0], leaf
    while True:
        anchor = pinned.get(ident.fingerprint.hex())
        if anchor is not None or ident.self_issued:
            return CertificationPath(tuple(path), anchor, None)
        named = False
        fresh = []
        issuer = None
        for candidate in pool.values():
            if not ident.may_be_issued_by(candidate[1]):
                continue
            named = True
            if candidate[1].fingerprint not in on_path:
                fresh.append(candidate)
                if memo.issued_by(cert, candidate[0]) is None:
                    issuer = candidate
                    break
        if issuer is None:
            anchor = _issuing_anchor(cert, ident, anchors)
            if anchor is not None:
                return CertificationPath(tuple(path), anchor, None)
            if not fresh:
                where = f"certificate {len(path) - 1} ({_subject(cert)})"
                problem = (
                    f"loop: the issuer of {where} is already on the path"
                    if named
                    else f"missing issuer: no certificate of {name_text(cert, 'issuer')} issues {where}"
                )
                return CertificationPath(tuple(path), None, problem)
            issuer = fresh[0]
        if len(path) == MAX_PATH_LENGTH:
            return CertificationPath(
                tuple(path),
                None,
                f"path longer than {MAX_PATH_LENGTH} certificates (MAX_PATH_LENGTH) without a trusted root",
            )
        cert, ident = issuer
        path.append(cert)
        on_path.add(ident.fingerprint)


def verify_path(
    certs: Sequence[x509.Certificate],
    anchors: Sequence[TrustAnchor],
    now: dt.datetime,
    *,
    what: str,
    check: str,
) -> tuple[CertificationPath, list[str]]:
    """Builds the path of ``certs`` (leaf first, the rest in any order) and checks it. Returns the path and
    every failure found, each a :class:`Failure` of ``check`` naming certificates by their position on the
    path: every certificate's validity window at ``now``, every issuer's CA flag and every signature, each
    checked independently; then a failure when the path reaches no anchor (with the builder's reason when it
    stopped short). Callers that need a particular certificate (the issuer of the leaf, the root) take it
    from ``path.certificates``, never from a position in ``certs``."""
    path = build_path(certs, anchors)
    chain = path.certificates
    failures: list[str] = []
    for i, cert in enumerate(chain):
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            state = "has expired" if now > cert.not_valid_after_utc else "is not yet valid"
            failures.append(
                Failure(
                    check,
                    f"{what}: certificate {i} ({_subject(cert)}) {state} at {now.isoformat()} "
                    f"(valid {cert.not_valid_before_utc.isoformat()}..{cert.not_valid_after_utc.isoformat()})",
                )
            )
    for i in range(1, len(chain)):
        if not memo.identity(chain[i]).ca:
            failures.append(Failure(check, f"{what}: certificate {i} issues certificate {i - 1} but is not a CA"))
    for i in range(len(chain) - 1):
        why = memo.issued_by(chain[i], chain[i + 1])
        if why is not None:
            failures.append(Failure(check, f"{what}: certificate {i} is not signed by certificate {i + 1}: {why}"))
    if path.anchor is None and path.problem is not None:
        failures.append(Failure(check, f"{what}: {path.problem}"))
    elif path.anchor is None:
        failures.append(
            Failure(
                check,
                f"{what}: chain does not end at a trusted root (last: {_subject(chain[-1])}, "
                f"SHA-256 {der_sha256(chain[-1])[:16]}...)",
            )
        )
    return path, failures


def verify_chain(
    certs: Sequence[x509.Certificate],
    anchors: Sequence[TrustAnchor],
    now: dt.datetime,
    *,
    what: str,
    check: str,
) -> tuple[TrustAnchor | None, list[str]]:
    """:func:`verify_path`, returning the anchor reached (None if none) instead of the path."""
    path, failures = verify_path(certs, anchors, now, what=what, check=check)
    return path.anchor, failures
