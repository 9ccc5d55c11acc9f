"""Every single-bit change to the certificates of real evidence (and to the real SNP report) ends in a
verification failure or an ``EvidenceFormatError``: nothing verifies, nothing raises anything else.

Exhaustive where the random tampering tests elsewhere sample: these sweeps found that names and signature
parameters, which ``cryptography`` decodes on first access, raised from failure messages and name
comparisons, and that a certificate re-encoded with an unused signature bit verified under another
fingerprint. About ten thousand verifications, a few seconds."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import warnings
from collections.abc import Callable, Iterator

import pytest

from cchet.attest import formats
from cchet.attest.collateral import CollateralSource
from cchet.attest.formats.certchain import der_to_pem, parse_pem_chain
from cchet.attest.formats.dcap import Quote
from cchet.attest.formats.snp import SnpReport, parse_snp_report
from cchet.attest.formats.spdm import SpdmReport
from cchet.attest.verify.amd import verify_snp_device
from cchet.attest.verify.intel import verify_quote_device
from cchet.attest.verify.nvidia import verify_gpu_device
from cchet.attest.verify.options import NoCollateral, TrustAnchor, default_options
from cchet.errors import EvidenceFormatError
from tests.conftest import fixture_path


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():  # real VCEKs carry serial 0; tampered names may decode with warnings
        warnings.simplefilter("ignore")
        yield


def _never_verifies(variants: Iterator[bytes], verify: Callable[[bytes], list[str]]) -> int:
    """Runs ``verify`` on every variant; returns how many got as far as verification."""
    verified = 0
    for variant in variants:
        try:
            failures = verify(variant)
        except EvidenceFormatError:
            continue
        verified += 1
        assert failures, "a changed byte verified"
    return verified


def _flips(data: bytes) -> Iterator[tuple[int, bytes]]:
    for at in range(len(data)):
        changed = bytearray(data)
        changed[at] ^= 1
        yield at, bytes(changed)


def _chain_variants(ders: tuple[bytes, ...], indices: range) -> Iterator[bytes]:
    for k in indices:
        for _, changed in _flips(ders[k]):
            yield b"".join(der_to_pem(changed if j == k else d) for j, d in enumerate(ders))


def test_nvidia_device_chain() -> None:
    sdk = "nvidia_attestation_sdk/unit_testdata/"
    report = formats.parse(fixture_path(sdk + "hopperAttestationReport.txt").read_bytes())
    assert isinstance(report, SpdmReport)
    ders = parse_pem_chain(fixture_path(sdk + "hopperCertChain.txt").read_bytes()).ders
    options = default_options(now=dt.datetime(2025, 6, 1, tzinfo=dt.UTC), collateral=CollateralSource())
    assert verify_gpu_device(report, b"".join(der_to_pem(d) for d in ders), options)[1] == []
    reached = _never_verifies(
        _chain_variants(ders, range(len(ders))), lambda pem: verify_gpu_device(report, pem, options)[1]
    )
    assert reached > 100


def test_amd_report_vcek_ask_and_ark() -> None:
    report = formats.parse(fixture_path("go_sev_guest/attestation.bin").read_bytes())
    assert isinstance(report, SnpReport)
    vcek = fixture_path("go_sev_guest/vcek.testcer").read_bytes()
    ders = (vcek, *parse_pem_chain(fixture_path("go_sev_guest/milan.testcer").read_bytes()).ders)
    options = default_options(now=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), collateral=CollateralSource())
    pem = b"".join(der_to_pem(d) for d in ders)
    assert verify_snp_device(report, pem, options)[1] == []
    reached = _never_verifies(
        _chain_variants(ders, range(len(ders))), lambda chain: verify_snp_device(report, chain, options)[1]
    )
    reached += _never_verifies(
        (changed for _, changed in _flips(report.to_bytes())),
        lambda raw: verify_snp_device(parse_snp_report(raw), pem, options)[1],
    )
    assert reached > 1000


def test_intel_pck_leaf_and_ca() -> None:
    base = "dcap_qvl/"
    quote = formats.parse(fixture_path(base + "tdx_quote").read_bytes())
    assert isinstance(quote, Quote)
    collateral = json.loads(fixture_path(base + "tdx_quote_collateral.json").read_text())
    root = fixture_path(base + "TrustedRootCA.der").read_bytes()
    options = default_options(
        now=dt.datetime(2025, 7, 19, 10, 0, 34, tzinfo=dt.UTC),
        anchors=(TrustAnchor("intel", root),),
        intel_collateral=lambda _q: collateral,
        collateral=NoCollateral(),
    )
    certification = quote.signature.qe.certification
    ders = parse_pem_chain(certification.data).ders

    def verify(pem: bytes) -> list[str]:
        qe = dataclasses.replace(quote.signature.qe, certification=dataclasses.replace(certification, data=pem))
        changed = dataclasses.replace(quote, signature=dataclasses.replace(quote.signature, qe=qe))
        return verify_quote_device(changed, options)[1]

    assert verify(certification.data) == []
    assert _never_verifies(_chain_variants(ders, range(2)), verify) > 50  # the root's copy is not trusted anyway
