"""Tampering properties of the real verifiers: any byte changed in the signed or signature part of a
(simulated) quote, SNP report or GPU report is either refused by the parser or fails verification; it never
verifies. (PEM certificate text is left out: whitespace inside it may change without changing a
certificate.)"""

from __future__ import annotations

import contextlib
import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cchet.attest import formats
from cchet.attest.collateral import CollateralSource
from cchet.attest.formats.dcap import Quote
from cchet.attest.formats.snp import SnpReport
from cchet.attest.formats.spdm import SpdmReport
from cchet.attest.simulate import SimulatedAuthority, simulated_collateral
from cchet.attest.simulate.dcap import simulate_tdx_quote
from cchet.attest.simulate.snp import simulate_snp_report
from cchet.attest.simulate.spdm import simulate_spdm_report
from cchet.attest.simulate.verifier import simulated_anchors
from cchet.attest.verify.amd import verify_snp_device
from cchet.attest.verify.intel import verify_quote_device
from cchet.attest.verify.nvidia import verify_gpu_device
from cchet.attest.verify.options import VerifyOptions, default_options
from cchet.errors import EvidenceFormatError
from tests.attest.conftest import NOW

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _options(authority: SimulatedAuthority, collateral: dict[str, str] | None = None) -> VerifyOptions:
    return default_options(
        now=NOW,
        anchors=simulated_anchors(authority),
        intel_collateral=lambda _q: collateral,
        collateral=CollateralSource(),
    )


def _flip(data: bytes, offset: int, xor: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= xor
    return bytes(out)


@SETTINGS
@given(where=st.floats(0, 1, exclude_max=True), xor=st.integers(1, 255))
def test_a_changed_quote_byte_never_verifies(authority: SimulatedAuthority, where: float, xor: int) -> None:
    quote = simulate_tdx_quote(authority, report_data=bytes(64))
    options = _options(authority, simulated_collateral(authority, quote, now=NOW))
    raw = quote.to_bytes()
    assert verify_quote_device(quote, options)[1] == []
    end = raw.index(b"-----BEGIN CERTIFICATE-----")
    bad = _flip(raw, int(where * end), xor)
    try:
        parsed = formats.parse(bad)
    except EvidenceFormatError:
        return
    assert isinstance(parsed, Quote)
    with contextlib.suppress(EvidenceFormatError):  # a certificate that no longer decodes vouches for nothing
        assert verify_quote_device(parsed, options)[1] != []


@SETTINGS
@given(where=st.floats(0, 1, exclude_max=True), xor=st.integers(1, 255))
def test_a_changed_snp_byte_never_verifies(authority: SimulatedAuthority, where: float, xor: int) -> None:
    report, certs = simulate_snp_report(authority, report_data=bytes(64))
    options = _options(authority)
    assert verify_snp_device(report, certs, options)[1] == []
    raw = report.to_bytes()
    bad = _flip(raw, int(where * len(raw)), xor)
    try:
        parsed = formats.parse(bad, "snp")
    except EvidenceFormatError:
        return
    assert isinstance(parsed, SnpReport)
    assert verify_snp_device(parsed, certs, options)[1] != []


@SETTINGS
@given(where=st.floats(0, 1, exclude_max=True), xor=st.integers(1, 255))
def test_a_changed_gpu_report_byte_never_verifies(authority: SimulatedAuthority, where: float, xor: int) -> None:
    report, certs = simulate_spdm_report(authority, nonce=bytes(32))
    options = _options(authority)
    assert verify_gpu_device(report, certs, options)[1] == []
    raw = report.to_bytes()
    bad = _flip(raw, int(where * len(raw)), xor)
    try:
        parsed = formats.parse(bad, "spdm")
    except EvidenceFormatError:
        return
    assert isinstance(parsed, SpdmReport)
    assert verify_gpu_device(parsed, certs, options)[1] != []


def test_the_verification_time_matters(authority: SimulatedAuthority) -> None:
    quote = simulate_tdx_quote(authority, report_data=bytes(64))
    collateral = simulated_collateral(authority, quote, now=NOW)
    later = default_options(
        now=NOW + dt.timedelta(days=45),
        anchors=simulated_anchors(authority),
        intel_collateral=lambda _q: collateral,
        collateral=CollateralSource(),
    )
    failures = verify_quote_device(quote, later)[1]
    assert {getattr(f, "check", "") for f in failures} >= {"intel.tcb_info_validity", "intel.crl"}
