"""Verification cannot be made to hold memory without bound: the memo cache stays within its byte budget
however many distinct certificates rejected evidence brings, and evidence carrying too many or too large
certificates is refused before they are decoded (cchet/attest/verify/memo.py, formats/certchain.py)."""

from __future__ import annotations

import datetime as dt
import gc
import tracemalloc
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cchet.attest.formats.certchain import MAX_CERTIFICATE_BYTES, MAX_CERTIFICATES, der_to_pem, parse_pem_chain
from cchet.attest.formats.dcap import CERT_DATA_PCK_CHAIN, CertificationData
from cchet.attest.simulate import SimulatedAuthority
from cchet.attest.simulate.snp import simulate_snp_report
from cchet.attest.simulate.spdm import simulate_spdm_report
from cchet.attest.simulate.verifier import simulated_anchors
from cchet.attest.verify import memo
from cchet.attest.verify.amd_certs import load_amd_certificates
from cchet.attest.verify.gpu import check_gpu
from cchet.attest.verify.snp import check_snp
from cchet.errors import EvidenceFormatError
from tests.attest.conftest import NOW

BUDGET = 256 * 1024


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    cn: str, key: ec.EllipticCurvePrivateKey, issuer: str, issuer_key: ec.EllipticCurvePrivateKey, *, serial: int
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=cn != "leaf", path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


def _fresh_chains() -> Iterator[bytes]:
    """Endless PEM chains (leaf, intermediate, root) of distinct certificates under an untrusted root: what a
    peer sending fresh certificates with every rejected release would bring."""
    key = ec.generate_private_key(ec.SECP256R1())
    serial = 1
    while True:
        certs = [
            _cert(cn, key, issuer, key, serial=serial)
            for cn, issuer in (("leaf", "ca"), ("ca", "root"), ("root", "root"))
        ]
        serial += 1
        yield b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


@pytest.fixture
def small_budget(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(memo, "CACHE_BUDGET_BYTES", BUDGET)
    memo.clear()
    yield
    memo.clear()


def test_rejected_verifications_with_fresh_chains_stay_within_the_cache_budget(
    authority: SimulatedAuthority, small_budget: None
) -> None:
    """Rejected GPU verifications, each with a fresh chain of 3 distinct certificates: the cache's own
    accounting never exceeds the budget, and once the cache is full, 400 more (about 15 times what the budget
    holds) leave what stays allocated (tracemalloc) within a quarter of the budget: old entries make room."""
    report, _ = simulate_spdm_report(authority, nonce=bytes(32))
    anchors = simulated_anchors(authority)
    chains = _fresh_chains()

    def reject(n: int) -> None:
        for _ in range(n):
            check = check_gpu(report, next(chains), anchors, NOW, what="gpu0")
            assert {f.check for f in check.failures} >= {"nvidia.chain", "nvidia.spdm_signature"}  # type: ignore[attr-defined]
            assert memo.estimated_bytes() <= BUDGET

    gc.collect()
    tracemalloc.start()
    try:
        reject(60)  # fills the cache
        gc.collect()
        full = tracemalloc.get_traced_memory()[0]
        reject(400)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - full
    finally:
        tracemalloc.stop()
    assert grown < BUDGET // 4, f"{grown} more bytes stayed allocated after 400 more rejected verifications"
    assert BUDGET // 2 < memo.estimated_bytes() <= BUDGET


def test_the_cache_counts_what_it_holds_and_clears() -> None:
    memo.clear()
    assert memo.estimated_bytes() == 0
    pem = next(_fresh_chains())
    certs = memo.certificates(pem)
    ders = parse_pem_chain(pem).ders
    decoded = sum(memo.DECODED_ENTRY_BASE_BYTES + memo.DECODED_BYTES_PER_INPUT_BYTE * len(d) for d in ders)
    assert memo.estimated_bytes() == decoded + memo.SMALL_ENTRY_BYTES  # three certificates and the text's digests
    assert memo.certificates(pem) == certs and memo.estimated_bytes() == decoded + memo.SMALL_ENTRY_BYTES
    memo.clear()
    assert memo.estimated_bytes() == 0


# Caps on the certificates of one piece of evidence -----------------------------------------------------------


def _big_certificate(size: int) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    padding = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), bytes(size))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("big"))
        .issuer_name(_name("big"))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(padding, critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def test_too_many_certificates_are_refused(authority: SimulatedAuthority) -> None:
    one = parse_pem_chain(next(_fresh_chains())).ders[0]
    too_many = der_to_pem(one) * (MAX_CERTIFICATES + 1)
    with pytest.raises(EvidenceFormatError, match=f"holds {MAX_CERTIFICATES + 1} certificates.*MAX_CERTIFICATES") as e:
        parse_pem_chain(too_many)
    assert e.value.field == "certificates"
    report, chain = simulate_spdm_report(authority, nonce=bytes(32))
    with pytest.raises(EvidenceFormatError, match="MAX_CERTIFICATES"):
        check_gpu(report, chain + too_many, simulated_anchors(authority), NOW, what="gpu0")
    snp, certs = simulate_snp_report(authority, report_data=bytes(64))
    with pytest.raises(EvidenceFormatError, match="MAX_CERTIFICATES"):
        check_snp(snp, certs + too_many, simulated_anchors(authority), NOW)
    pck = CertificationData(CERT_DATA_PCK_CHAIN, too_many)
    with pytest.raises(EvidenceFormatError, match="MAX_CERTIFICATES") as e:
        pck.pem_certificates()
    assert e.value.field == "certification_data.pck_chain"
    assert len(parse_pem_chain(der_to_pem(one) * MAX_CERTIFICATES).ders) == MAX_CERTIFICATES


def test_a_too_large_certificate_is_refused(authority: SimulatedAuthority) -> None:
    fits = _big_certificate(MAX_CERTIFICATE_BYTES - 400)
    big = _big_certificate(MAX_CERTIFICATE_BYTES)
    assert len(fits) <= MAX_CERTIFICATE_BYTES < len(big)
    assert memo.certificate(fits).public_bytes(serialization.Encoding.DER) == fits
    with pytest.raises(EvidenceFormatError, match=f"exceeds the limit of {MAX_CERTIFICATE_BYTES} bytes") as e:
        memo.certificate(big, field="pck")
    assert e.value.field == "pck"
    with pytest.raises(EvidenceFormatError, match="MAX_CERTIFICATE_BYTES") as e:
        parse_pem_chain(der_to_pem(fits) + der_to_pem(big))
    assert e.value.field == "certificate[1]"
    with pytest.raises(EvidenceFormatError, match="MAX_CERTIFICATE_BYTES"):
        load_amd_certificates(big)
    report, chain = simulate_spdm_report(authority, nonce=bytes(32))
    with pytest.raises(EvidenceFormatError, match="MAX_CERTIFICATE_BYTES"):
        check_gpu(report, chain + der_to_pem(big), simulated_anchors(authority), NOW, what="gpu0")
    pck = CertificationData(CERT_DATA_PCK_CHAIN, der_to_pem(big))
    with pytest.raises(EvidenceFormatError, match="MAX_CERTIFICATE_BYTES"):
        memo.certificate(pck.pem_certificates()[0], field="certification_data.pck_chain[0]")
