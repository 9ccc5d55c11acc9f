"""Every real fixture parses and round-trips byte for byte (Intel collateral JSON: value for value); parsed
fields match what upstream asserts."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pytest
from cryptography import x509

from cchet.attest import formats
from cchet.attest.formats.ccel import parse_ccel, rtmr_mismatches
from cchet.attest.formats.dcap import Quote, SgxReportBody, TdReportBody
from cchet.attest.formats.intel_collateral import (
    QeIdentity,
    TcbInfo,
    parse_qe_identity,
    parse_tcb_info,
)
from cchet.attest.formats.pck import parse_pck_extensions
from cchet.attest.formats.snp import SnpReport
from cchet.attest.formats.spdm import SpdmReport
from cchet.errors import EvidenceFormatError
from tests.conftest import fixture_path

BINARY_QUOTES = [
    "dcap_qvl/tdx_quote",
    "dcap_qvl/sgx_quote",
    "dcap_qvl/tdx_quote_outdated",
    "go_tdx_guest/quote_v5_sample.dat",
    "go_tdx_guest/tdx_prod_quote_SPR_E4.dat",
    "go_tdx_guest/ccel/cos-113-tdx-quote.dat",
]
HEX_QUOTES = ["dcap_qvl/near_quote_hex.txt", "dcap_qvl/quote-from-tappd.hex", "dcap_qvl/tdx-quote.hex"]
GPU_REPORTS = [
    "nvidia_attestation_sdk/unit_testdata/hopperAttestationReport.txt",
    "nvidia_attestation_sdk/unit_testdata/switchAttestationReport.txt",
    "nvidia_attestation_sdk/unit_testdata/sample_attestation_data/gpu/blackwellAttestationReport.txt",
    "nvidia_attestation_sdk/unit_testdata/sample_attestation_data/gpu/hopperAttestationReport.txt",
    "nvidia_attestation_sdk/unit_testdata/sample_attestation_data/gpu/hopperAttestationReportExpired.txt",
    "nvidia_attestation_sdk/unit_testdata/sample_attestation_data/gpu/hopperAttestationReportInvalidSignature.txt",
    "nvidia_attestation_sdk/unit_testdata/sample_attestation_data/switch/switchAttestationReport.txt",
    "nvtrust/local_gpu_verifier_samples/hopperAttestationReport.txt",
]
GPU_JSON = [
    "nvtrust/ppcie_tests_data/gpu_evidence.json",
    "nvtrust/ppcie_tests_data/switch_evidence.json",
    "nvidia_attestation_sdk/serialized_test_evidence/hopper_evidence.json",
    "nvidia_attestation_sdk/serialized_test_evidence/multi_gpu_hopper.json",
    "nvidia_attestation_sdk/unit_testdata/evidence_hopper_590_12.json",
]
CHAINS = [
    "nvidia_attestation_sdk/unit_testdata/hopperCertChain.txt",
    "nvidia_attestation_sdk/unit_testdata/sample_attestation_data/gpu/blackwellCertChain.txt",
    "virtee_sev/cert_chain_milan",
    "go_sev_guest/milan.testcer",
]


def _hex_bytes(path: str) -> bytes:
    text = fixture_path(path).read_text().strip()
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


@pytest.mark.parametrize("name", BINARY_QUOTES)
def test_binary_quotes_round_trip(name: str) -> None:
    data = fixture_path(name).read_bytes()
    quote = formats.parse(data)
    assert isinstance(quote, Quote)
    assert formats.serialize(quote) == data
    assert formats.parse(data, kind="quote") == quote


@pytest.mark.parametrize("name", HEX_QUOTES)
def test_hex_quotes_parse_and_round_trip(name: str) -> None:
    raw = _hex_bytes(name)
    quote = formats.parse(fixture_path(name).read_bytes())
    assert isinstance(quote, Quote)
    assert formats.serialize(quote) == raw


def test_tdx_v4_fields_match_upstream() -> None:
    quote = formats.parse(fixture_path("dcap_qvl/tdx_quote").read_bytes(), kind="tdx")
    assert isinstance(quote, Quote) and isinstance(quote.body, TdReportBody)
    assert quote.header.version == 4 and quote.kind == "tdx" and quote.body_type is None
    assert quote.body.tee_tcb_svn.hex() == "06010300000000000000000000000000"
    assert quote.body.report_data.hex().startswith("9a9d48e7") and quote.body.report_data.hex().endswith(
        "523f20"
    )
    assert quote.trailing == bytes(70)
    assert quote.signature.wrapped and quote.signature.qe.certification.cert_type == 5
    pck = parse_pck_extensions(
        x509.load_pem_x509_certificate(quote.signature.qe.certification.pem_certificates()[0])
    )
    assert pck.fmspc.hex().upper() == "B0C06F000000"


def test_tdx_v5_td15_body() -> None:
    quote = formats.parse(fixture_path("dcap_qvl/tdx_quote_outdated").read_bytes())
    assert isinstance(quote, Quote) and isinstance(quote.body, TdReportBody)
    assert quote.header.version == 5 and quote.body_type == 3 and quote.body.is_td15
    assert quote.body.report_data.hex().startswith("d2142b64") and quote.body.report_data[32:] == bytes(32)
    assert quote.body.tee_tcb_svn.hex().startswith("07010300")


def test_sgx_v3_fields_match_upstream() -> None:
    quote = formats.parse(fixture_path("dcap_qvl/sgx_quote").read_bytes(), kind="sgx")
    assert isinstance(quote, Quote) and isinstance(quote.body, SgxReportBody)
    assert quote.header.version == 3 and not quote.signature.wrapped
    assert quote.body.mr_enclave.hex().startswith("33d8736d") and quote.body.mr_enclave.hex().endswith("2fbb")
    assert quote.body.mr_signer.hex().startswith("815f42f1") and quote.body.mr_signer.hex().endswith("e0e6")
    assert quote.body.report_data == b"Hello, world!" + bytes(51)
    assert quote.signature.qe.qe_report.isv_svn == 10


def test_kind_mismatch_is_a_format_error() -> None:
    with pytest.raises(EvidenceFormatError) as e:
        formats.parse(fixture_path("dcap_qvl/sgx_quote").read_bytes(), kind="tdx")
    assert e.value.field == "header.tee_type"


@pytest.mark.parametrize("name", ["go_sev_guest/attestation.bin", "virtee_sev/report_milan.hex"])
def test_snp_reports_round_trip(name: str) -> None:
    data = fixture_path(name).read_bytes()
    report = formats.parse(data)
    assert isinstance(report, SnpReport)
    raw = data if name.endswith(".bin") else _hex_bytes(name)
    assert formats.serialize(report) == raw


def test_snp_fields_match_go_sev_guest() -> None:
    report = formats.parse(fixture_path("go_sev_guest/attestation.bin").read_bytes(), kind="snp")
    assert isinstance(report, SnpReport)
    assert report.version == 2 and report.policy == 0xB0000 and report.debug
    assert report.reported_tcb == 0x4405000000000002
    tcb = report.tcb()
    assert (tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode) == (2, 0, 5, 68)
    assert report.report_data == bytes.fromhex("0102030405") + bytes(59)
    assert report.measurement.hex().startswith("b07af962") and report.chip_id.hex().startswith("3ac3fe21")
    assert (report.current_major, report.current_minor, report.current_build) == (1, 49, 3)
    assert report.vmpl == 0 and report.signing_key == "vcek"


@pytest.mark.parametrize("name", GPU_REPORTS)
def test_gpu_reports_round_trip(name: str) -> None:
    raw = _hex_bytes(name)
    report = formats.parse(fixture_path(name).read_bytes())
    assert isinstance(report, SpdmReport)
    assert formats.serialize(report) == raw
    assert len(report.response.signature) == 96


def test_gpu_report_matches_nvidia_parsed_output() -> None:
    report = formats.parse(
        fixture_path("nvidia_attestation_sdk/unit_testdata/hopperAttestationReport.txt").read_bytes()
    )
    assert isinstance(report, SpdmReport)
    want = json.loads(
        fixture_path("nvidia_attestation_sdk/unit_testdata/spdm_parsed_output.json").read_text()
    )
    req = json.loads(
        fixture_path("nvidia_attestation_sdk/unit_testdata/spdm_req_parsed_output.json").read_text()
    )
    assert report.request.nonce.hex() == req["Nonce"][2:]
    assert report.response.nonce.hex() == want["Nonce"][2:]
    assert len(report.response.blocks) == want["NumberOfBlocks"]
    assert report.response.signature.hex() == want["Signature"][2:]
    blocks = want["MeasurementRecord"]["MeasurementBlocks"]
    for block in report.response.blocks:
        assert block.value.hex() == blocks[str(block.index)]["DMTFSpecMeasurementValue"][2:]
    opaque = want["OpaqueData"]["OpaqueDataField"]
    assert report.fwid is not None and report.fwid.hex() == opaque["OPAQUE_FIELD_ID_FWID"][2:]
    assert report.driver_version == "580.159.03" and report.vbios_version == "96.00.74.00.20"


@pytest.mark.parametrize("name", GPU_JSON)
def test_gpu_evidence_json_entries_round_trip(name: str) -> None:
    for entry in json.loads(fixture_path(name).read_text()):
        raw = base64.b64decode(entry["evidence"])
        report = formats.parse(raw, kind="spdm")
        assert isinstance(report, SpdmReport) and formats.serialize(report) == raw
        if "driver_version" in entry and report.driver_version is not None:
            assert report.driver_version == entry["driver_version"]
            assert report.vbios_version == entry["vbios_version"]


def test_spdm_padding_is_kept() -> None:
    raw = _hex_bytes("nvidia_attestation_sdk/unit_testdata/hopperAttestationReport.txt")
    padded = raw + bytes(8192 - len(raw))
    report = formats.parse(padded, kind="spdm")
    assert isinstance(report, SpdmReport)
    assert report.padding == bytes(8192 - len(raw)) and formats.serialize(report) == padded


@pytest.mark.parametrize("name", CHAINS)
def test_certificate_chains_round_trip(name: str) -> None:
    data = fixture_path(name).read_bytes()
    chain = formats.parse(data)
    assert formats.serialize(chain) == data
    assert len(chain.certificates()) >= 2  # type: ignore[union-attr]


def test_ccel_round_trips_and_replays_to_the_quote() -> None:
    data = fixture_path("go_tdx_guest/ccel/ccel_data.dat").read_bytes()
    log = formats.parse(data)
    assert formats.serialize(log) == data
    quote = formats.parse(fixture_path("go_tdx_guest/ccel/cos-113-tdx-quote.dat").read_bytes())
    assert isinstance(quote, Quote) and isinstance(quote.body, TdReportBody)
    assert rtmr_mismatches(parse_ccel(data), quote.body.rtmrs) == []


def test_ccel_replay_detects_a_changed_event() -> None:
    data = fixture_path("go_tdx_guest/ccel/ccel_data.dat").read_bytes()
    log = parse_ccel(data)
    quote = formats.parse(fixture_path("go_tdx_guest/ccel/cos-113-tdx-quote.dat").read_bytes())
    assert isinstance(quote, Quote) and isinstance(quote.body, TdReportBody)
    event = next(e for e in log.events if e.mr_index == 2 and e.event_type != 3)
    offset = data.index(event.to_bytes()) + 14  # first byte of the SHA-384 digest
    tampered = bytearray(data)
    tampered[offset] ^= 1
    assert rtmr_mismatches(parse_ccel(bytes(tampered)), quote.body.rtmrs) == [1]


# Intel collateral (TCB info, QE identity): JSON text, so the inverse is a JSON value, not bytes. Intel PCS
# serves upper-case hex except in older FMSPCs, which to_dict writes upper-case; the descriptive labels of
# TCB components (category, type) are not kept.
DCAP_QVL_COLLATERAL = [
    "dcap_qvl/tdx_quote_collateral.json",
    "dcap_qvl/sgx_quote_collateral.json",
    "dcap_qvl/tdx_quote_outdated_collateral.json",
    "dcap_qvl/near_quote_collateral.json",
]
PCS_RESPONSES = [
    ("go_tdx_guest/sample_tcbInfo_response", "tcbInfo"),
    ("go_tdx_guest/sample_tcbinfo_response_v5", "tcbInfo"),
    ("go_tdx_guest/sample_qeIdentity_response", "enclaveIdentity"),
]


def _collateral_round_trips(text: str, parse: Callable[[str], TcbInfo | QeIdentity]) -> TcbInfo | QeIdentity:
    parsed = parse(text)
    assert parse(parsed.to_json()) == parsed
    expected = json.loads(text)
    if "fmspc" in expected:
        expected["fmspc"] = expected["fmspc"].upper()
    for level in expected["tcbLevels"]:
        for part in ("sgxtcbcomponents", "tdxtcbcomponents"):
            for component in level["tcb"].get(part, []):
                component.pop("category", None)
                component.pop("type", None)
    assert json.loads(parsed.to_json()) == expected  # every other field Intel wrote is kept
    return parsed


@pytest.mark.parametrize("name", DCAP_QVL_COLLATERAL)
def test_intel_collateral_round_trips(name: str) -> None:
    collateral = json.loads(fixture_path(name).read_text())
    tcb_info = _collateral_round_trips(collateral["tcb_info"], parse_tcb_info)
    qe_identity = _collateral_round_trips(collateral["qe_identity"], parse_qe_identity)
    assert isinstance(tcb_info, TcbInfo) and isinstance(qe_identity, QeIdentity)
    assert tcb_info.id == ("SGX" if "sgx" in name else "TDX") and qe_identity.id == ("QE" if "sgx" in name else "TD_QE")
    assert all(len(level.tcb.sgx_svns) == 16 for level in tcb_info.tcb_levels)
    assert all((level.tcb.tdx_svns is None) == ("sgx" in name) for level in tcb_info.tcb_levels)


@pytest.mark.parametrize(("name", "key"), PCS_RESPONSES)
def test_intel_pcs_responses_round_trip(name: str, key: str) -> None:
    from cchet.attest.collateral import Response
    from cchet.attest.collateral.pcs import signed_object

    text, _signature = signed_object(Response(fixture_path(name).read_bytes()), key, name)
    _collateral_round_trips(text, parse_tcb_info if key == "tcbInfo" else parse_qe_identity)


def test_intel_collateral_fields_match_the_fixture() -> None:
    collateral = json.loads(fixture_path("dcap_qvl/tdx_quote_collateral.json").read_text())
    info = parse_tcb_info(collateral["tcb_info"])
    assert info.fmspc == bytes.fromhex("B0C06F000000") and info.pce_id == bytes(2) and info.version == 3
    assert (info.issue_date.isoformat(), info.next_update.isoformat()) == (
        "2025-06-19T10:16:03+00:00",
        "2025-07-19T10:16:03+00:00",
    )
    assert [m.id for m in info.tdx_module_identities] == ["TDX_03", "TDX_01"]
    top = info.tcb_levels[0]
    assert top.tcb_status == "UpToDate" and top.tcb.pce_svn == 11 and top.tcb.tdx_svns is not None
    assert top.tcb.sgx_svns == (2, 2, 2, 2, 3, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0)
    assert top.tcb.tdx_svns == (5, 0, 2, *([0] * 13))
    qe = parse_qe_identity(collateral["qe_identity"])
    assert qe.mr_signer.hex().upper().startswith("DC9E2A7C") and qe.isv_prod_id == 2
    assert qe.miscselect_mask == 0xFFFFFFFF and qe.tcb_levels[0].isv_svn == 4
