"""Real AMD SEV-SNP reports, VCEKs and ASK/ASVK/ARK chains get the verdicts upstream asserts (MANIFEST.md
section 3) under the pinned ARKs. Every test here runs with warnings turned into errors: real VCEKs carry
serial number 0, which ``cryptography`` loads with a warning it plans to make an error."""

from __future__ import annotations

import datetime as dt
import hashlib
import warnings
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from cchet.attest import formats
from cchet.attest.collateral import CollateralSource
from cchet.attest.formats.certchain import der_to_pem
from cchet.attest.formats.snp import SnpReport
from cchet.attest.verify.amd import verify_snp_device
from cchet.attest.verify.amd_certs import load_amd_certificates
from cchet.attest.verify.failure import raise_failures
from cchet.attest.verify.options import NoCollateral, VerifyOptions, default_options, pinned_anchors
from cchet.attest.verify.roots import AMD_ARKS, AMD_INTERMEDIATES
from cchet.attest.verify.snp import check_amd_chain
from cchet.errors import CertificateChainError, EvidenceFormatError, SignatureError
from tests.conftest import fixture_path

NOW = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _warnings_are_errors() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def opts(now: dt.datetime = NOW, **kw: object) -> VerifyOptions:
    return default_options(now=now, collateral=CollateralSource()).replace(**kw)


def checks(failures: list[str]) -> set[str]:
    return {getattr(f, "check", "?") for f in failures}


def go_sev_guest() -> tuple[SnpReport, bytes]:
    report = formats.parse(fixture_path("go_sev_guest/attestation.bin").read_bytes())
    assert isinstance(report, SnpReport)
    certs = der_to_pem(fixture_path("go_sev_guest/vcek.testcer").read_bytes())
    return report, certs + fixture_path("go_sev_guest/milan.testcer").read_bytes()


def virtee() -> tuple[SnpReport, bytes, bytes]:
    report = formats.parse(fixture_path("virtee_sev/report_milan.hex").read_bytes())
    assert isinstance(report, SnpReport)
    vcek = fixture_path("virtee_sev/vcek_milan.der").read_bytes()
    return report, vcek, fixture_path("virtee_sev/cert_chain_milan").read_bytes()


def test_go_sev_guest_milan_report_verifies_under_the_pinned_ark() -> None:
    report, certs = go_sev_guest()
    device, failures = verify_snp_device(report, certs, opts())
    assert failures == []
    assert device.anchor == AMD_ARKS["Milan"].sha256 and not device.simulated


def test_go_sev_guest_stepping_zero_passes_and_twelve_fails() -> None:
    report, certs = go_sev_guest()
    assert verify_snp_device(report, certs, opts(amd_stepping=0))[1] == []
    _, failures = verify_snp_device(report, certs, opts(amd_stepping=12))
    assert checks(failures) == {"amd.product"}
    assert "expected product stepping 12, got 0" in failures[0]


def test_go_sev_guest_vcek_from_collateral_when_the_evidence_has_none() -> None:
    """The VCEK by chip id and TCB, and the ASK/ARK chain, come from the collateral source (KDS/cache)."""
    report, _ = go_sev_guest()

    class Kds(NoCollateral):
        def amd_chain(self, product: str, key: str, now: dt.datetime) -> bytes | None:
            assert (product, key) == ("Milan", "vcek")
            return fixture_path("go_sev_guest/milan.testcer").read_bytes()

        def amd_vcek(self, r: SnpReport, product: str, now: dt.datetime) -> bytes | None:
            return fixture_path("go_sev_guest/vcek.testcer").read_bytes()

    device, failures = verify_snp_device(report, b"", opts(collateral=Kds(), amd_product="Milan"))
    assert failures == [] and device.anchor == AMD_ARKS["Milan"].sha256
    _, failures = verify_snp_device(report, b"", opts())
    assert checks(failures) == {"amd.certificates_missing"}


def test_virtee_milan_report_verifies_and_its_bit_flips_fail() -> None:
    report, vcek, chain = virtee()
    assert verify_snp_device(report, der_to_pem(vcek) + chain, opts())[1] == []
    flipped = bytearray(report.to_bytes())
    flipped[21] ^= 0x80
    bad = formats.parse(bytes(flipped))
    assert isinstance(bad, SnpReport)
    _, failures = verify_snp_device(bad, der_to_pem(vcek) + chain, opts())
    assert "amd.report_signature" in checks(failures)
    with pytest.raises(SignatureError):
        raise_failures([f for f in failures if getattr(f, "check", "") == "amd.report_signature"])
    broken = bytearray(vcek)
    broken[40] ^= 0xFF
    try:
        _, failures = verify_snp_device(report, der_to_pem(bytes(broken)) + chain, opts())
    except EvidenceFormatError:
        return  # the flipped VCEK no longer decodes: it can vouch for nothing
    assert "amd.chain" in checks(failures)


@pytest.mark.parametrize(
    ("leaf", "chain", "product"),
    [
        ("virtee_sev/vcek_milan.der", "virtee_sev/cert_chain_milan", "Milan"),
        ("virtee_sev/vcek_turin.der", "virtee_sev/cert_chain_turin", "Turin"),
        ("go_sev_guest/vcek.testcer", "amd_roots/ask_ark_milan.pem", "Milan"),
    ],
)
def test_vcek_chains_verify_rsa_pss_to_the_pinned_ark(leaf: str, chain: str, product: str) -> None:
    certs = load_amd_certificates(der_to_pem(fixture_path(leaf).read_bytes()) + fixture_path(chain).read_bytes())
    anchor, failures = check_amd_chain(certs, pinned_anchors(), dt.datetime(2025, 1, 1, tzinfo=dt.UTC), "vcek")
    assert failures == [] and anchor is not None and anchor.fingerprint == AMD_ARKS[product].sha256
    _, failures = check_amd_chain(certs, pinned_anchors(), dt.datetime(2025, 1, 1, tzinfo=dt.UTC), "vlek")
    assert checks(failures) == {"amd.chain"}  # an ASK never certifies a VLEK


@pytest.mark.parametrize(
    "bundle",
    [
        "ask_ark_milan.pem",
        "ask_ark_genoa.pem",
        "ask_ark_turin_vcek.pem",
        "ask_ark_milan_vlek.pem",
        "ask_ark_genoa_vlek.pem",
        "ask_ark_turin_vlek.pem",
        "trustee_milan_ask_ark_asvk.pem",
        "trustee_genoa_ask_ark_asvk.pem",
        "trustee_turin_ask_ark_asvk.pem",
    ],
)
def test_every_published_ask_and_asvk_chains_to_its_pinned_ark(bundle: str) -> None:
    certs = load_amd_certificates(fixture_path(f"amd_roots/{bundle}").read_bytes())
    (ark,) = [c for c in certs if c.subject.rfc4514_string().startswith("CN=ARK-")]
    for ask in [c for c in certs if c is not ark]:
        fp = hashlib.sha256(ask.public_bytes(Encoding.DER)).hexdigest()
        product, key = AMD_INTERMEDIATES[fp]
        assert key == ("vlek" if "VLEK" in ask.subject.rfc4514_string() else "vcek")
        anchor, failures = check_amd_chain([ask, ark], pinned_anchors(), dt.datetime(2025, 1, 1, tzinfo=dt.UTC), key)
        assert anchor is not None and anchor.fingerprint == AMD_ARKS[product].sha256
        assert [f for f in failures if "expected key" not in f] == []


def test_a_chain_to_another_products_ark_fails() -> None:
    vcek = load_amd_certificates(fixture_path("virtee_sev/vcek_milan.der").read_bytes())
    genoa = load_amd_certificates(fixture_path("amd_roots/ask_ark_genoa.pem").read_bytes())
    _, failures = check_amd_chain(vcek + genoa, pinned_anchors(), dt.datetime(2025, 1, 1, tzinfo=dt.UTC), "vcek")
    assert "amd.chain" in checks(failures)
    with pytest.raises(CertificateChainError):
        raise_failures(failures)


def test_far_future_fails() -> None:
    report, certs = go_sev_guest()
    _, failures = verify_snp_device(report, certs, opts(now=dt.datetime(2060, 1, 1, tzinfo=dt.UTC)))
    assert checks(failures) == {"amd.chain"} and any("has expired" in f for f in failures)


def test_the_rsa_pss_rule_tells_amd_links_from_ecdsa_ones(tmp_path: object) -> None:
    """Every real AMD link is RSASSA-PSS SHA-384; the rule refuses an ECDSA-signed certificate (a simulated
    VCEK here), which is what it would see if anything but AMD's keys had signed a link."""
    from cchet.attest.simulate import SimulatedAuthority
    from cchet.attest.verify.snp import signed_rsa_pss_sha384

    real = load_amd_certificates(
        der_to_pem(fixture_path("virtee_sev/vcek_turin.der").read_bytes())
        + fixture_path("virtee_sev/cert_chain_turin").read_bytes()
    )
    assert len(real) == 3 and all(signed_rsa_pss_sha384(c) for c in real)
    authority = SimulatedAuthority.open(f"{tmp_path}/a")
    assert not signed_rsa_pss_sha384(authority.issue_vcek((1, 2, 3, 4)))


def test_an_ask_whose_subject_name_does_not_decode_is_a_failure_not_a_crash() -> None:
    """Names are decoded on first access: comparing them as objects raised from the check for whether the
    evidence carries its chain; names are compared as DER."""
    from cryptography import x509

    from cchet.attest.formats.certchain import parse_pem_chain
    from cchet.attest.formats.der import tlv_span

    report, _ = go_sev_guest()
    ask, ark = parse_pem_chain(fixture_path("go_sev_guest/milan.testcer").read_bytes()).ders
    changed = bytearray(ask)
    _, start, _ = tlv_span(changed)
    _, tbs, _ = tlv_span(changed, start)
    tag, _, end = tlv_span(changed, tbs)
    if tag == 0xA0:
        _, _, end = tlv_span(changed, end)
    _, _, issuer = tlv_span(changed, end)  # past the signature algorithm
    _, _, validity = tlv_span(changed, issuer)
    _, _, subject = tlv_span(changed, validity)
    _, rdn, _ = tlv_span(changed, subject)
    _, attribute, _ = tlv_span(changed, rdn)
    _, oid, _ = tlv_span(changed, attribute)
    _, _, value = tlv_span(changed, oid)
    changed[value] = 0x0D  # the first attribute's value tag: RELATIVE-OID, refused when the name is read
    with pytest.raises(ValueError):
        _ = x509.load_der_x509_certificate(bytes(changed)).subject
    vcek = fixture_path("go_sev_guest/vcek.testcer").read_bytes()
    chain = der_to_pem(vcek) + der_to_pem(bytes(changed)) + der_to_pem(ark)
    _, failures = verify_snp_device(report, chain, opts(amd_product="Milan"))
    assert failures and checks(failures) <= {"amd.chain", "amd.certificates_missing"}
