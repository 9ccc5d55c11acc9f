"""Certificate revocation lists: is the CRL authentic and current, and does it list a certificate.

A CRL is trusted only when its issuer name and signature match the CA certificate given (itself verified as
part of a chain) and ``now`` lies in [thisUpdate, nextUpdate]. Accepts DER, PEM or hex-encoded DER (as
dcap-qvl's collateral JSON carries it). The time-independent parts (decoding, issuer and signature,
listing) are memoised by the SHA-256 of the exact CRL input (:mod:`cchet.attest.verify.memo`).
"""

from __future__ import annotations

import binascii
import contextlib
import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cchet.attest.verify import memo
from cchet.attest.verify.failure import Failure

__all__ = ["decode_crl", "load_crl", "revoked", "verify_crl"]


def load_crl(data: bytes | str) -> x509.CertificateRevocationList:
    """Decodes a CRL from DER, PEM or hex text (memoised); raises ``ValueError`` when it is none of these."""
    return memo.crl(data)


def decode_crl(raw: bytes) -> tuple[x509.CertificateRevocationList, bytes]:
    """:func:`load_crl` without memoisation, and the CRL's DER."""
    if raw.lstrip().startswith(b"-----BEGIN"):
        crl = x509.load_pem_x509_crl(raw)
        return crl, crl.public_bytes(serialization.Encoding.DER)
    with contextlib.suppress(binascii.Error, ValueError):
        raw = binascii.unhexlify(raw.strip())
    return x509.load_der_x509_crl(raw), raw


def verify_crl(
    data: bytes | str, issuer: x509.Certificate, now: dt.datetime, *, what: str, check: str
) -> tuple[x509.CertificateRevocationList | None, list[str]]:
    """The decoded CRL (None when it does not decode) and the failures (of ``check``) of trusting it as
    issued by ``issuer`` at ``now``; no failures when it can be trusted."""
    try:
        crl = memo.crl(data)
    except ValueError as e:
        return None, [Failure(check, f"{what}: malformed: {e}")]
    failures: list[str] = []
    problem = memo.crl_issuer_problem(data, issuer)
    if problem is not None:
        failures.append(Failure(check, f"{what}: {problem}"))
    next_update = crl.next_update_utc
    if now < crl.last_update_utc or next_update is None or now > next_update:
        failures.append(
            Failure(
                check,
                f"{what}: not valid at {now.isoformat()} "
                f"(thisUpdate {crl.last_update_utc.isoformat()}, nextUpdate "
                f"{next_update.isoformat() if next_update else 'absent'})",
            )
        )
    return crl, failures


def revoked(data: bytes | str, cert: x509.Certificate) -> bool:
    """True when the CRL ``data`` was issued by ``cert``'s issuer and lists ``cert``'s serial number."""
    return memo.crl_lists(data, cert)
