"""Putting loose certificates (a folder, several files) leaf first, for ``cchet verify --certs``.

Ordering decides nothing about trust, and only the leaf's place matters: verification builds the path from
the first certificate through the others in any order (:func:`cchet.attest.verify.chain.build_path`).
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509

from cchet.attest.verify import memo
from cchet.attest.verify.chain import build_path

__all__ = ["order_chain"]


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def order_chain(certs: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """Duplicates removed; first the leaf: the first certificate that names no other given one as its issuer
    would (:meth:`~cchet.attest.formats.certchain.CertificateIdentity.may_be_issued_by`) and is not a CA, else
    the first that names none; then the path :func:`~cchet.attest.verify.chain.build_path` builds from it
    (no anchors: up to a self-issued root or as far as it goes); then the rest in their order."""
    unique: dict[bytes, x509.Certificate] = {}
    for cert in certs:
        unique.setdefault(memo.identity(cert).fingerprint, cert)
    pool = list(unique.values())
    if len(pool) < 2:
        return pool
    ids = [memo.identity(c) for c in pool]
    issues_none = [
        c for c, i in zip(pool, ids, strict=True) if not any(o is not i and o.may_be_issued_by(i) for o in ids)
    ]
    leaf = next((c for c in issues_none if not _is_ca(c)), issues_none[0] if issues_none else pool[0])
    path = build_path([leaf, *pool], ()).certificates
    return [*path, *(c for c in pool if c not in path)]
