"""Simulated TDX and SGX quotes are real DCAP quotes: dcap-qvl parses them and accepts them under the
simulated root with simulated collateral, and rejects tampering; field by field they match the real layout."""

from __future__ import annotations

import json

import pytest

from cchet.attest import formats
from cchet.attest.formats.dcap import Quote, SgxReportBody, TdReportBody
from cchet.attest.simulate import (
    SimulatedAuthority,
    simulate_sgx_quote,
    simulate_tdx_quote,
    simulated_collateral,
)
from tests.attest.conftest import NOW
from tests.conftest import fixture_path

dcap_qvl = pytest.importorskip("dcap_qvl", reason="dcap-qvl is a dev dependency (pip install -e '.[dev]')")

REPORT_DATA = bytes(range(64))


def _verify(quote: Quote, authority: SimulatedAuthority, **kw: object) -> object:
    collateral = simulated_collateral(authority, quote, now=NOW, **kw)  # type: ignore[arg-type]
    col = dcap_qvl.QuoteCollateralV3.from_json(json.dumps(collateral))
    return dcap_qvl.verify_with_root_ca(
        quote.to_bytes(), col, authority.der("intel_root"), int(NOW.timestamp())
    )


def test_dcap_qvl_parses_simulated_tdx_quote(authority: SimulatedAuthority) -> None:
    mr_td = bytes([7]) * 48
    quote = simulate_tdx_quote(authority, report_data=REPORT_DATA, mr_td=mr_td)
    parsed = dcap_qvl.parse_quote(quote.to_bytes())
    assert parsed.is_tdx() and parsed.header.version == 4
    assert parsed.report.mr_td == mr_td and parsed.report.report_data == REPORT_DATA
    assert parsed.fmspc() == "00906ED50000"


def test_dcap_qvl_accepts_simulated_tdx_quote(authority: SimulatedAuthority) -> None:
    report = _verify(simulate_tdx_quote(authority, report_data=REPORT_DATA), authority)
    assert report.status == "UpToDate" and list(report.advisory_ids) == []


def test_dcap_qvl_reports_the_chosen_tcb_status(authority: SimulatedAuthority) -> None:
    quote = simulate_tdx_quote(authority, report_data=REPORT_DATA)
    report = _verify(quote, authority, tcb_status="SWHardeningNeeded", advisory_ids=["INTEL-SA-00615"])
    assert report.status == "SWHardeningNeeded" and list(report.advisory_ids) == ["INTEL-SA-00615"]


@pytest.mark.parametrize("offset", [10, 48 + 136, 48 + 520, 48 + 584 + 4 + 70, 48 + 584 + 4 + 128 + 6 + 100])
def test_dcap_qvl_rejects_tampered_simulated_quote(authority: SimulatedAuthority, offset: int) -> None:
    quote = simulate_tdx_quote(authority, report_data=REPORT_DATA)
    collateral = simulated_collateral(authority, quote, now=NOW)
    col = dcap_qvl.QuoteCollateralV3.from_json(json.dumps(collateral))
    raw = bytearray(quote.to_bytes())
    raw[offset] ^= 0x01
    with pytest.raises(ValueError):
        dcap_qvl.verify_with_root_ca(bytes(raw), col, authority.der("intel_root"), int(NOW.timestamp()))


def test_dcap_qvl_rejects_simulated_quote_under_intel_root(authority: SimulatedAuthority) -> None:
    quote = simulate_tdx_quote(authority, report_data=REPORT_DATA)
    col = dcap_qvl.QuoteCollateralV3.from_json(json.dumps(simulated_collateral(authority, quote, now=NOW)))
    intel_root = fixture_path("dcap_qvl/TrustedRootCA.der").read_bytes()
    with pytest.raises(ValueError):
        dcap_qvl.verify_with_root_ca(quote.to_bytes(), col, intel_root, int(NOW.timestamp()))


def test_dcap_qvl_accepts_simulated_sgx_quote(authority: SimulatedAuthority) -> None:
    quote = simulate_sgx_quote(authority, report_data=REPORT_DATA, isv_prod_id=3, isv_svn=2)
    report = _verify(quote, authority)
    assert report.status == "UpToDate"
    assert dcap_qvl.parse_quote(quote.to_bytes()).is_sgx()


def test_simulated_tdx_layout_matches_real_quote(authority: SimulatedAuthority) -> None:
    real = formats.parse(fixture_path("dcap_qvl/tdx_quote").read_bytes())
    sim = simulate_tdx_quote(authority, report_data=REPORT_DATA)
    assert (
        isinstance(real, Quote) and isinstance(real.body, TdReportBody) and isinstance(sim.body, TdReportBody)
    )
    assert sim.header.version == real.header.version == 4
    assert sim.header.attestation_key_type == real.header.attestation_key_type
    assert sim.header.tee_type == real.header.tee_type
    assert sim.header.qe_vendor_id == real.header.qe_vendor_id
    assert len(sim.body.to_bytes()) == len(real.body.to_bytes()) == 584
    assert sim.body.td_attributes == real.body.td_attributes and sim.body.xfam == real.body.xfam
    assert sim.signature.wrapped and real.signature.wrapped
    assert len(sim.signature.qe.qe_auth_data) == len(real.signature.qe.qe_auth_data)
    assert sim.signature.qe.certification.cert_type == real.signature.qe.certification.cert_type == 5
    assert len(sim.signature.qe.certification.pem_certificates()) == 3
    sim_raw, real_raw = sim.to_bytes(), real.to_bytes()
    # identical offsets: header, body, signature-data length, signature, key, outer cert type, QE report
    assert sim_raw[: 48 + 584 + 4][48 + 520 : 48 + 584] == REPORT_DATA
    for raw in (sim_raw, real_raw):
        assert raw[48 + 584 + 4 + 128 : 48 + 584 + 4 + 130] == b"\x06\x00"
    assert formats.parse(sim_raw) == sim


def test_simulated_sgx_layout_matches_real_quote(authority: SimulatedAuthority) -> None:
    real = formats.parse(fixture_path("dcap_qvl/sgx_quote").read_bytes())
    sim = simulate_sgx_quote(authority, report_data=REPORT_DATA)
    assert isinstance(real, Quote) and isinstance(real.body, SgxReportBody)
    assert (sim.header.version, sim.header.tee_type) == (real.header.version, real.header.tee_type) == (3, 0)
    assert not sim.signature.wrapped and not real.signature.wrapped
    assert sim.to_bytes()[48 + 320 : 48 + 384] == REPORT_DATA
    assert formats.parse(sim.to_bytes()) == sim


def test_report_data_must_be_exactly_64_bytes(authority: SimulatedAuthority) -> None:
    with pytest.raises(ValueError, match="exactly 64"):
        simulate_tdx_quote(authority, report_data=bytes(63))
    with pytest.raises(ValueError, match="exactly 64"):
        simulate_sgx_quote(authority, report_data=bytes(65))
