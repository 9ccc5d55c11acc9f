"""AMD signs its CRLs (like its chains) RSASSA-PSS with SHA-384: such a CRL verifies under its ARK, fails
under another key or after nextUpdate, and lists what it revokes. No real AMD CRL is in the fixtures, so an
ARK-like RSA key stands in (the RSA-PSS rule itself is checked on AMD's real chains in tests/conformance)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from cchet.attest.verify.crl import revoked, verify_crl
from cchet.attest.verify.snp import signed_rsa_pss_sha384

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)


def _ca(cn: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA384(), rsa_padding=PSS)
    )
    return key, cert


@pytest.fixture(scope="module")
def ark() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    return _ca("ARK-Test")


def _crl(key: rsa.RSAPrivateKey, issuer: x509.Certificate, revoke: int | None = None) -> bytes:
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(NOW - dt.timedelta(hours=1))
        .next_update(NOW + dt.timedelta(days=7))
    )
    if revoke is not None:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(revoke).revocation_date(NOW - dt.timedelta(hours=1)).build()
        )
    return b.sign(key, hashes.SHA384(), rsa_padding=PSS).public_bytes(Encoding.DER)


def test_rsa_pss_crl_verifies_under_its_ark(ark: tuple[rsa.RSAPrivateKey, x509.Certificate]) -> None:
    key, cert = ark
    assert signed_rsa_pss_sha384(cert)
    data = _crl(key, cert, revoke=1)
    crl, failures = verify_crl(data, cert, NOW, what="amd crl", check="amd.crl")
    assert crl is not None and failures == []
    assert revoked(data, cert)  # the ARK lists itself here: what matters is that listing is seen


def test_rsa_pss_crl_under_another_key_or_late_fails(ark: tuple[rsa.RSAPrivateKey, x509.Certificate]) -> None:
    key, cert = ark
    other_key, _ = _ca("ARK-Test")
    forged = _crl(other_key, cert)
    assert [f.check for f in verify_crl(forged, cert, NOW, what="amd crl", check="amd.crl")[1]] == ["amd.crl"]  # type: ignore[attr-defined]
    late = verify_crl(_crl(key, cert), cert, NOW + dt.timedelta(days=8), what="amd crl", check="amd.crl")[1]
    assert len(late) == 1 and "not valid at" in late[0]
