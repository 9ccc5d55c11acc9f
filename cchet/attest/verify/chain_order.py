"""Putting loose certificates (a folder, several files) in chain order, leaf first.

Ordering decides nothing about trust: the chain is verified afterwards like any other.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509

from cchet.attest.verify.chain import der_sha256

__all__ = ["order_chain"]


def order_chain(certs: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """Duplicates removed, then the certificate that issues no other first, each followed by its issuer
    (by name); certificates that fit nowhere keep their order at the end."""
    unique: dict[str, x509.Certificate] = {}
    for c in certs:
        unique.setdefault(der_sha256(c), c)
    pool = list(unique.values())
    if len(pool) < 2:
        return pool
    issuers = {c.issuer for c in pool if c.issuer != c.subject}
    leaves = [c for c in pool if c.subject not in issuers]
    out = [leaves[0] if leaves else pool[0]]
    rest = [c for c in pool if c is not out[0]]
    while rest:
        nxt = next((c for c in rest if c.subject == out[-1].issuer and out[-1].issuer != out[-1].subject), None)
        if nxt is None:
            break
        out.append(nxt)
        rest.remove(nxt)
    return out + rest
