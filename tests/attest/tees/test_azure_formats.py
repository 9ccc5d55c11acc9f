"""Azure vTPM evidence formats: exact round trips, parsers that raise only EvidenceFormatError on anything,
and tampering: a byte changed in a signed or bound part never verifies."""

from __future__ import annotations

import contextlib
import json
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cchet.attest import formats
from cchet.attest.simulate import SimulatedAuthority, simulation_options
from cchet.attest.tees import tee
from cchet.attest.tees.azure.hcl import RUNTIME_DATA_OFFSET, parse_hcl_report
from cchet.attest.tees.azure.report import AzureVtpmReport, parse_azure_report
from cchet.attest.tees.azure.tpm import PcrBank, TpmsAttest, parse_tpms_attest, pcr_bitmap
from cchet.attest.tees.azure.trustee import parse_trustee_evidence, to_trustee_json
from cchet.errors import EvidenceFormatError
from tests.attest.conftest import NOW
from tests.conftest import fixtures_root

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TAMPER = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
KINDS = ("az-snp", "az-tdx")
FIXTURE_EVIDENCE = (
    "trustee/az_snp_vtpm/evidence-v0.json",
    "trustee/az_snp_vtpm/evidence-v1.json",
    "trustee/az_tdx_vtpm/evidence-v0.json",
)


@pytest.fixture(scope="module")
def reports(authority: SimulatedAuthority) -> dict[str, tuple[AzureVtpmReport, bytes]]:
    out = {}
    for kind in KINDS:
        report, certs = tee(kind).simulate(authority, report_data=bytes(range(64)))
        out[kind] = (report, certs)
    return out


def _seeds() -> list[bytes]:
    root = fixtures_root()
    if root is None:
        return []
    return [parse_trustee_evidence((root / name).read_bytes()).to_bytes() for name in FIXTURE_EVIDENCE]


# -- round trips ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_binary_round_trip_is_exact(reports: dict[str, tuple[AzureVtpmReport, bytes]], kind: str) -> None:
    report = reports[kind][0]
    raw = report.to_bytes()
    again = parse_azure_report(raw)
    assert again == report and again.to_bytes() == raw and formats.serialize(formats.parse(raw)) == raw
    assert parse_hcl_report(report.hcl.to_bytes()).to_bytes() == report.hcl.to_bytes()
    assert len(report.hcl.to_bytes()) == 2600
    assert parse_tpms_attest(report.quote.message) == report.quote.attest


@pytest.mark.parametrize("kind", KINDS)
def test_trustee_json_round_trip(reports: dict[str, tuple[AzureVtpmReport, bytes]], kind: str) -> None:
    report = reports[kind][0]
    assert parse_azure_report(to_trustee_json(report)) == report
    assert formats.parse(to_trustee_json(report), kind) == report


def test_tpms_attest_layout() -> None:
    attest = TpmsAttest(b"\x00\x0b" + bytes(32), b"nonce", 1, 2, 3, 1, 4, (PcrBank(0x000B, pcr_bitmap((0, 23))),), b"")
    raw = attest.to_bytes()
    assert raw[:6] == bytes.fromhex("ff5443478018") and raw[6:8] == b"\x00\x22"
    assert raw[42:49] == b"\x00\x05nonce" and parse_tpms_attest(raw) == attest
    assert attest.pcr_select[0].indices == (0, 23) and pcr_bitmap((0, 23)) == b"\x01\x00\x80"
    with pytest.raises(ValueError, match="PCR 24"):
        pcr_bitmap((24,))


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda b: b"\xff\x54\x43\x48" + b[4:], "tpms_attest.magic"),
        (lambda b: b[:4] + b"\x80\x14" + b[6:], "tpms_attest.type"),
        (lambda b: b[:6] + b"\x00\x43" + b[8:], "tpms_attest.qualified_signer.size"),
        (lambda b: b + b"\x00", "tpms_attest.trailing"),
        (lambda b: b[:-1], "tpms_attest.pcr_digest"),
    ],
)
def test_tpms_attest_is_parsed_tightly(
    reports: dict[str, tuple[AzureVtpmReport, bytes]], edit: Any, field: str
) -> None:
    with pytest.raises(EvidenceFormatError) as e:
        parse_tpms_attest(edit(reports["az-snp"][0].quote.message))
    assert e.value.field == field


def test_hcl_report_is_parsed_tightly(reports: dict[str, tuple[AzureVtpmReport, bytes]]) -> None:
    raw = reports["az-snp"][0].hcl.to_bytes()

    def field_of(edit: bytes, at: int) -> str | None:
        with pytest.raises(EvidenceFormatError) as e:
            parse_hcl_report(raw[:at] + edit + raw[at + len(edit) :])
        return e.value.field

    assert field_of(b"HCLB", 0) == "hcl_report.signature"
    assert field_of(struct.pack("<I", 3), 4) == "hcl_report.version"
    assert field_of(b"\x01", 0x14) == "hcl_report.reserved"
    assert field_of(struct.pack("<I", 3), 0x4C8) == "hcl_report.igvm.report_type"
    assert field_of(struct.pack("<I", 2), 0x4CC) == "hcl_report.igvm.hash_type"
    assert field_of(struct.pack("<I", 0), 0x4C0) == "hcl_report.igvm"
    assert field_of(struct.pack("<I", 99), 8) == "hcl_report.report_size"
    assert field_of(b"\x01", len(raw) - 1) == "hcl_report.padding"
    assert field_of(b"\x01", 0x20 + 0x4C) == "hcl_report.snp.reserved0"
    tdx = reports["az-tdx"][0].hcl.to_bytes()
    with pytest.raises(EvidenceFormatError) as e:
        parse_hcl_report(tdx[: 0x20 + 1024] + b"\x01" + tdx[0x20 + 1025 :])
    assert e.value.field == "hcl_report.td_report.unused"


def test_the_container_refuses_mismatched_parts(reports: dict[str, tuple[AzureVtpmReport, bytes]]) -> None:
    snp, tdx = reports["az-snp"][0], reports["az-tdx"][0]
    assert tdx.td_quote is not None
    raw = snp.to_bytes()
    with pytest.raises(EvidenceFormatError, match="after the last part"):
        parse_azure_report(raw + b"\x00")
    parts = (tdx.hcl.to_bytes(), tdx.quote.message, tdx.quote.signature, b"".join(tdx.pcrs), b"")
    no_quote = b"AZVT" + struct.pack("<HH", 1, 0) + b"".join(struct.pack("<I", len(p)) + p for p in parts)
    with pytest.raises(EvidenceFormatError, match="needs its TD quote"):
        parse_azure_report(no_quote)
    odd_pcrs = snp.to_bytes().replace(b"".join(snp.pcrs), b"".join(snp.pcrs)[:-1])
    with pytest.raises(EvidenceFormatError):
        parse_azure_report(odd_pcrs)


def test_trustee_json_problems_name_the_member() -> None:
    def field_of(doc: Any) -> str | None:
        with pytest.raises(EvidenceFormatError) as e:
            parse_trustee_evidence(json.dumps(doc).encode())
        return e.value.field

    assert field_of([]) == "trustee.evidence"
    assert field_of({"version": 2}) == "trustee.version"
    assert field_of({"version": True}) == "trustee.version"
    assert field_of({"version": 1}) == "trustee.evidence"
    quote = {"signature": "00", "message": "00", "pcrs": ["00" * 31]}
    assert field_of({"version": 1, "tpm_quote": quote, "hcl_report": "", "vcek": ""}) == "trustee.tpm_quote.pcrs[0]"
    assert field_of({"quote": {"signature": [256], "message": [], "pcrs": []}}) == "trustee.quote.signature"
    assert field_of({"tpm_quote": {"signature": [], "message": [], "pcrs": []}, "hcl_report": "x"}) == (
        "trustee.hcl_report"
    )
    with pytest.raises(EvidenceFormatError, match="not JSON"):
        parse_trustee_evidence(b"{")


# -- fuzzing ----------------------------------------------------------------------------------------------


def _parse_or_format_error(data: bytes, kind: str = "auto") -> None:
    try:
        parsed = formats.parse(data, kind)
    except EvidenceFormatError:
        return
    if isinstance(parsed, AzureVtpmReport):
        assert parse_azure_report(parsed.to_bytes()) == parsed


@FUZZ
@given(data=st.binary(max_size=4096), kind=st.sampled_from(KINDS))
def test_random_bytes_raise_only_format_errors(data: bytes, kind: str) -> None:
    _parse_or_format_error(b"AZVT\x01\x00\x00\x00" + data, kind)
    _parse_or_format_error(data, kind)
    with contextlib.suppress(EvidenceFormatError):
        parse_tpms_attest(b"\xff\x54\x43\x47\x80\x18" + data)
    with contextlib.suppress(EvidenceFormatError):
        parse_hcl_report(b"HCLA" + data)


@FUZZ
@given(
    pick=st.integers(0, 4),
    where=st.floats(0, 1, exclude_max=True),
    value=st.integers(0, 255),
    cut=st.integers(0, 8),
)
def test_mutated_evidence_raises_only_format_errors(
    reports: dict[str, tuple[AzureVtpmReport, bytes]], pick: int, where: float, value: int, cut: int
) -> None:
    seeds = [reports["az-snp"][0].to_bytes(), reports["az-tdx"][0].to_bytes(), *_seeds()]
    raw = bytearray(seeds[pick % len(seeds)])
    raw[int(where * len(raw))] = value
    data = bytes(raw[: len(raw) - cut])
    for kind in ("auto", *KINDS):
        _parse_or_format_error(data, kind)


@FUZZ
@given(
    doc=st.recursive(
        st.none() | st.booleans() | st.integers(-2, 300) | st.text(max_size=12),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
        max_leaves=12,
    ),
    members=st.dictionaries(
        st.sampled_from(["version", "tpm_quote", "quote", "hcl_report", "report", "vcek", "td_quote"]),
        st.none() | st.integers(0, 2) | st.text(max_size=8) | st.lists(st.integers(-1, 256), max_size=4),
    ),
)
def test_trustee_json_fuzz(doc: Any, members: dict[str, Any]) -> None:
    for candidate in (doc, members):
        with contextlib.suppress(EvidenceFormatError):
            parse_trustee_evidence(json.dumps(candidate).encode())


@pytest.mark.skipif(fixtures_root() is None, reason="real-world fixtures not found (CCHET_FIXTURES)")
def test_fixture_evidence_round_trips_through_the_binary_form() -> None:
    for raw in _seeds():
        assert parse_azure_report(raw).to_bytes() == raw


# -- tampering --------------------------------------------------------------------------------------------


def _regions(report: AzureVtpmReport) -> dict[str, tuple[int, int]]:
    """Where the signed or bound parts lie in the binary form: (start, end) offsets."""
    raw = report.to_bytes()
    at = 8
    spans = []
    while at < len(raw):
        size = int.from_bytes(raw[at : at + 4], "little")
        spans.append((at + 4, at + 4 + size))
        at += 4 + size
    hcl, message, signature, pcrs, hardware = spans
    runtime = (hcl[0] + RUNTIME_DATA_OFFSET, hcl[0] + RUNTIME_DATA_OFFSET + len(report.hcl.runtime_data))
    out = {"runtime_data": runtime, "tpms_attest": message, "signature": signature, "pcrs": pcrs}
    slot = hcl[0] + 0x20
    if report.td_quote is None:
        out["snp_report"] = (slot, slot + 0x2A0 + 144)
        out["vcek"] = hardware
    else:
        signed = len(report.td_quote.signed_bytes())
        out["td_quote"] = (hardware[0], hardware[0] + signed + 4 + 128)  # header, body, signature and key
        out["td_report"] = (slot + 128, slot + 192)  # report data
        out["td_info"] = (slot + 512, slot + 512 + 400)  # attributes .. RTMRs
    return out


@TAMPER
@given(data=st.data(), xor=st.integers(1, 255))
def test_a_changed_byte_in_a_signed_part_never_verifies(
    authority: SimulatedAuthority, reports: dict[str, tuple[AzureVtpmReport, bytes]], data: Any, xor: int
) -> None:
    kind = data.draw(st.sampled_from(KINDS))
    report, certs = reports[kind]
    regions = _regions(report)
    name = data.draw(st.sampled_from(sorted(regions)))
    start, end = regions[name]
    offset = data.draw(st.integers(start, end - 1))
    raw = bytearray(report.to_bytes())
    raw[offset] ^= xor
    try:
        tampered = parse_azure_report(bytes(raw), kind)
        _, failures = tee(kind).verify(
            tampered, certs, simulation_options(authority, now=NOW), expected_report_data=bytes(range(64))
        )
    except EvidenceFormatError:
        return
    assert failures, f"{kind}: byte {offset} of {name} changed and the evidence still verifies"
