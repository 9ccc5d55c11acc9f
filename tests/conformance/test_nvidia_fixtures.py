"""Real NVIDIA GPU reports, device chains and signed RIMs get the verdicts upstream asserts (MANIFEST.md
section 4) under the pinned NVIDIA Device Identity CA and RIM root."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from cchet.attest import formats
from cchet.attest.collateral import CollateralSource
from cchet.attest.formats.spdm import SpdmReport
from cchet.attest.verify.failure import raise_failures
from cchet.attest.verify.nvidia import verify_gpu_device
from cchet.attest.verify.options import TrustAnchor, VerifyOptions, default_options, pinned_anchors
from cchet.attest.verify.rim import verify_rim
from cchet.attest.verify.roots import NVIDIA_DEVICE_ROOT, NVIDIA_RIM_ROOT
from cchet.errors import CertificateChainError, MeasurementMismatchError, NonceMismatchError, SignatureError
from tests.conftest import fixture_path

NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
SDK = "nvidia_attestation_sdk/unit_testdata/"
GPU = SDK + "sample_attestation_data/gpu/"
VBIOS_535 = "nvtrust/local_gpu_verifier_samples/1010_0200_882_96005E0001_PROD.swidtag"


def opts(now: dt.datetime = NOW, rims: tuple[str, ...] = ()) -> VerifyOptions:
    return default_options(
        now=now, collateral=CollateralSource(), rims=tuple(fixture_path(r).read_bytes() for r in rims)
    )


def report(relative: str) -> SpdmReport:
    r = formats.parse(fixture_path(relative).read_bytes())
    assert isinstance(r, SpdmReport)
    return r


def checks(failures: list[str]) -> set[str]:
    return {getattr(f, "check", "?") for f in failures}


@pytest.mark.parametrize(
    ("name", "chain", "driver"),
    [
        (SDK + "hopperAttestationReport.txt", SDK + "hopperCertChain.txt", "580.159.03"),
        (GPU + "hopperAttestationReport.txt", GPU + "hopperCertChain.txt", "535.86.09"),
        (GPU + "blackwellAttestationReport.txt", GPU + "blackwellCertChain.txt", "575.32"),
        (
            "nvtrust/local_gpu_verifier_samples/hopperAttestationReport.txt",
            "nvtrust/local_gpu_verifier_samples/hopperCertChain.txt",
            "550.90.07",
        ),
    ],
)
def test_real_reports_verify_under_the_pinned_device_root(name: str, chain: str, driver: str) -> None:
    r = report(name)
    assert r.driver_version == driver
    device, failures = verify_gpu_device(r, fixture_path(chain).read_bytes(), opts())
    assert failures == []
    assert device.anchor == NVIDIA_DEVICE_ROOT.sha256
    assert device.measurements == "not compared"  # no RIMs for these versions are in the fixtures


def test_bad_nonce_is_a_nonce_mismatch() -> None:
    r = report(GPU + "hopperAttestationReport.txt")
    certs = fixture_path(GPU + "hopperCertChain.txt").read_bytes()
    expected = bytes.fromhex("27a328247bf7935c993341cf587be6f05986ccce4fe7ba2c54100bd616a58f66")
    assert verify_gpu_device(r, certs, opts(), expected_nonce=expected)[1] == []
    _, failures = verify_gpu_device(r, certs, opts(), expected_nonce=bytes(32))
    assert checks(failures) == {"nvidia.nonce"}
    with pytest.raises(NonceMismatchError):
        raise_failures(failures)


def test_invalid_signature() -> None:
    r = report(GPU + "hopperAttestationReportInvalidSignature.txt")
    _, failures = verify_gpu_device(r, fixture_path(GPU + "hopperCertChainExpired.txt").read_bytes(), opts())
    assert "nvidia.spdm_signature" in checks(failures)
    with pytest.raises(SignatureError):
        raise_failures(failures)


def test_the_vbios_rim_matches_the_535_report() -> None:
    r = report(GPU + "hopperAttestationReport.txt")
    certs = fixture_path(GPU + "hopperCertChain.txt").read_bytes()
    device, failures = verify_gpu_device(r, certs, opts(rims=(VBIOS_535,)))
    assert failures == [] and device.rim_versions == ("96.00.5E.00.01",)
    assert device.measurements == "not compared"  # the 535.86.09 driver RIM is not in the fixtures


def test_a_mismatching_vbios_rim_fails_on_the_measurement() -> None:
    r = report(GPU + "hopperAttestationReport.txt")
    certs = fixture_path(GPU + "hopperCertChain.txt").read_bytes()
    mismatch = SDK + "sample_rims/NV_GPU_VBIOS_1010_0200_882_96005E0001_measurement_mismatch.xml"
    device, failures = verify_gpu_device(r, certs, opts(rims=(mismatch,)))
    assert checks(failures) == {"nvidia.measurements"} and device.measurements == "mismatch"
    with pytest.raises(MeasurementMismatchError):
        raise_failures(failures)


def test_the_edited_driver_rim_does_not_verify() -> None:
    """The driver measurement-mismatch sample was edited after signing: its XMLDSig digest fails (upstream's
    test only compares measurements)."""
    r = report(GPU + "hopperAttestationReport.txt")
    certs = fixture_path(GPU + "hopperCertChain.txt").read_bytes()
    edited = SDK + "sample_rims/NV_GPU_DRIVER_GH100_535.86.09_measurement_mismatch.xml"
    device, failures = verify_gpu_device(r, certs, opts(now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), rims=(edited,)))
    assert "nvidia.rim_signature" in checks(failures) and device.measurements == "not compared"


def rim_anchors() -> tuple[TrustAnchor, ...]:
    return tuple(a for a in pinned_anchors() if a.vendor == "nvidia-rim")


def test_driver_rim_550_verifies_to_the_pinned_rim_root() -> None:
    rim, failures = verify_rim(
        fixture_path(SDK + "NV_GPU_DRIVER_GH100_550.144.03.xml").read_bytes(),
        rim_anchors(),
        dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        what="rim",
    )
    assert failures == [] and rim is not None
    assert rim.version == "550.144.03" and rim.product == "GH100" and rim.measurements


def test_the_pinned_rim_root_is_the_fixture_root() -> None:
    import hashlib

    from cchet.attest.formats.certchain import parse_pem_chain

    der = parse_pem_chain(fixture_path(SDK + "trusted_certs/rim_root.crt").read_bytes()).ders[0]
    assert hashlib.sha256(der).hexdigest() == NVIDIA_RIM_ROOT.sha256


def test_driver_rim_under_the_incorrect_root_fails_the_chain() -> None:
    from cchet.attest.formats.certchain import parse_pem_chain

    wrong = TrustAnchor(
        "nvidia-rim", parse_pem_chain(fixture_path(SDK + "incorrect_rim_root.crt").read_bytes()).ders[0]
    )
    _, failures = verify_rim(
        fixture_path(SDK + "NV_GPU_DRIVER_GH100_550.144.03.xml").read_bytes(),
        (wrong,),
        dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        what="rim",
    )
    assert checks(failures) == {"nvidia.rim_chain"}
    with pytest.raises(CertificateChainError):
        raise_failures(failures)


@pytest.mark.parametrize(
    ("name", "check"),
    [
        ("incorrect_signature_driver_rim.xml", "nvidia.rim_signature"),
        ("incorrect_cert_chain_driver_rim.xml", "nvidia.rim_chain"),
    ],
)
def test_negative_rims(name: str, check: str) -> None:
    _, failures = verify_rim(
        fixture_path(SDK + name).read_bytes(), rim_anchors(), dt.datetime(2026, 1, 1, tzinfo=dt.UTC), what="rim"
    )
    assert checks(failures) == {check}


def test_expired_driver_rim_for_the_570_report() -> None:
    """Its signing certificate is valid for one day (2025-01-01): expired. The sample was also edited after
    signing, so its XMLDSig digest fails too."""
    r = report(GPU + "hopperAttestationReportExpired.txt")
    assert r.driver_version == "570.124.03"
    expired = SDK + "sample_rims/NV_GPU_DRIVER_GH100_570.124.03_expired.xml"
    certs = fixture_path(GPU + "hopperCertChainExpired.txt").read_bytes()
    _, failures = verify_gpu_device(r, certs, opts(rims=(expired,)))
    assert checks(failures) == {"nvidia.rim_chain", "nvidia.rim_signature"}
    assert any("has expired" in f for f in failures if f.check == "nvidia.rim_chain")  # type: ignore[attr-defined]


def test_negative_chains() -> None:
    r = report(SDK + "hopperAttestationReport.txt")
    from cchet.attest.formats.certchain import parse_pem_chain

    chain = parse_pem_chain(fixture_path(SDK + "hopperCertChain.txt").read_bytes())
    pems = fixture_path(SDK + "hopperCertChain.txt").read_bytes().split(b"-----END CERTIFICATE-----")
    without_leaf = b"-----END CERTIFICATE-----".join(pems[1:])
    _, failures = verify_gpu_device(r, without_leaf, opts())
    assert "nvidia.spdm_signature" in checks(failures)
    switch = fixture_path(SDK + "switchCertChain.txt").read_bytes()
    _, failures = verify_gpu_device(r, switch, opts())
    assert "nvidia.spdm_signature" in checks(failures)
    assert len(chain.ders) == 5
    from cchet.attest.formats.certchain import der_to_pem

    no_root = b"".join(der_to_pem(d) for d in chain.ders[:-2])
    _, failures = verify_gpu_device(r, no_root, opts())
    assert checks(failures) == {"nvidia.chain"}


def test_ppcie_eight_gpus_verify() -> None:
    evidence = json.loads(fixture_path("nvtrust/ppcie_tests_data/gpu_evidence.json").read_text())
    assert len(evidence) == 8
    for i, item in enumerate(evidence):
        r = formats.parse(base64.b64decode(item["evidence"]), "spdm")
        assert isinstance(r, SpdmReport)
        certs = base64.b64decode(item["certificate"])
        _, failures = verify_gpu_device(r, certs, opts(), index=i, expected_nonce=bytes.fromhex(item["nonce"]))
        assert failures == [], i


@pytest.mark.parametrize(
    "name",
    [
        "nvidia_attestation_sdk/serialized_test_evidence/hopper_evidence.json",
        "nvidia_attestation_sdk/serialized_test_evidence/multi_gpu_hopper.json",
        "nvidia_attestation_sdk/serialized_test_evidence/hopper_evidence_cert_hold.json",
        "nvidia_attestation_sdk/unit_testdata/evidence_hopper_590_12.json",
    ],
)
def test_serialized_sdk_evidence_verifies_offline(name: str) -> None:
    """Chain, signature, FWID and nonce verify. ``cert_hold`` is about the OCSP status of a certificate
    (on hold), which needs NVIDIA's OCSP service: not judged offline."""
    for i, item in enumerate(json.loads(fixture_path(name).read_text())):
        r = formats.parse(base64.b64decode(item["evidence"]), "spdm")
        assert isinstance(r, SpdmReport)
        certs = base64.b64decode(item["certificate"])
        _, failures = verify_gpu_device(r, certs, opts(), index=i, expected_nonce=bytes.fromhex(item["nonce"]))
        assert failures == [], (name, i)
        _, failures = verify_gpu_device(r, certs, opts(), index=i, expected_nonce=bytes(32))
        assert checks(failures) == {"nvidia.nonce"}


@pytest.mark.parametrize("index", [2, 3])  # the certificates whose signature's last bit is 0
def test_a_certificate_re_encoded_with_an_unused_signature_bit_is_refused(index: int) -> None:
    """Declaring one unused bit in a certificate's signature BIT STRING leaves the bytes cryptography hands to
    ECDSA as they were, so the real chain verified under another encoding, hence another fingerprint (a
    GPU's identity). DER allows no unused bits there: the certificate is refused as malformed."""
    from cchet.attest.formats.certchain import der_to_pem, parse_pem_chain
    from cchet.attest.formats.der import tlv_span
    from cchet.errors import EvidenceFormatError

    r = report(SDK + "hopperAttestationReport.txt")
    ders = list(parse_pem_chain(fixture_path(SDK + "hopperCertChain.txt").read_bytes()).ders)
    der = bytearray(ders[index])
    _, start, _ = tlv_span(der)
    _, _, tbs_end = tlv_span(der, start)
    _, _, algorithm_end = tlv_span(der, tbs_end)
    _, bits, _ = tlv_span(der, algorithm_end)
    assert der[bits] == 0 and der[-1] & 1 == 0  # one more unused bit keeps the signature's bytes valid
    der[bits] = 1
    ders[index] = bytes(der)
    with pytest.raises(EvidenceFormatError, match="unused bits"):
        verify_gpu_device(r, b"".join(der_to_pem(d) for d in ders), opts())
