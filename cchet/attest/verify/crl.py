"""Certificate revocation lists: is the CRL authentic and current, and does it list a certificate.

A CRL is trusted only when its issuer name and signature match the CA certificate given (itself verified as
part of a chain) and ``now`` lies in [thisUpdate, nextUpdate]. Accepts DER, PEM or hex-encoded DER (as
dcap-qvl's collateral JSON carries it).
"""

from __future__ import annotations

import binascii
import contextlib
import datetime as dt

from cryptography import x509

from cchet.attest.verify.failure import Failure

__all__ = ["decode_crl", "load_crl", "revoked", "verify_crl"]


def load_crl(data: bytes | str) -> x509.CertificateRevocationList:
    """Decodes a CRL from DER, PEM or hex text (memoised); raises ``ValueError`` when it is none of these."""
    from cchet.attest.verify.memo import crl

    return crl(data)


def decode_crl(raw: bytes) -> x509.CertificateRevocationList:
    """:func:`load_crl` without memoisation."""
    if raw.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_crl(raw)
    with contextlib.suppress(binascii.Error, ValueError):
        raw = binascii.unhexlify(raw.strip())
    return x509.load_der_x509_crl(raw)


def verify_crl(
    crl: x509.CertificateRevocationList, issuer: x509.Certificate, now: dt.datetime, *, what: str, check: str
) -> list[str]:
    """Failures (of ``check``) of ``crl`` as issued by ``issuer`` at ``now``; empty when it can be trusted."""
    failures: list[str] = []
    if crl.issuer != issuer.subject:
        failures.append(
            Failure(check, f"{what}: issued by {crl.issuer.rfc4514_string()}, not {issuer.subject.rfc4514_string()}")
        )
    from cchet.attest.verify.memo import crl_signature_valid

    if not crl_signature_valid(crl, issuer):
        failures.append(Failure(check, f"{what}: signature does not verify with {issuer.subject.rfc4514_string()}"))
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
    return failures


def revoked(crl: x509.CertificateRevocationList, cert: x509.Certificate) -> bool:
    """True when ``crl`` lists ``cert``'s serial number (the caller checks the CRL's issuer is cert's)."""
    return crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
