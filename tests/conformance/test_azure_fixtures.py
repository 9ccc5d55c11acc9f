"""Trustee's Azure vTPM fixtures (MANIFEST.md, "Trustee: Azure vTPM CVMs"): every upstream verdict, offline.

The expected report data is upstream's ``REPORT_DATA``, the 9 bytes ``challenge``. AMD's Milan ASK/ARK come
from ``amd_roots`` through a collateral source stand-in (upstream compiles them in; cchet pins the ARK and
takes the ASK from collateral). The Azure TDX evidence needs Intel PCS collateral for its FMSPC, which the
fixtures do not hold: everything else verifies, and the one failure names what is missing
(``intel.collateral_missing``); upstream's own test is ``#[ignore]``d for the same reason. Upstream checks the
VCEK against the current clock; here a fixed time inside every certificate's validity is used.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cchet.attest.collateral import CollateralCache, CollateralSource
from cchet.attest.collateral.fetcher import FetchError
from cchet.attest.evidence import CompositeEvidence, CpuEvidence
from cchet.attest.formats.dcap import parse_quote
from cchet.attest.tees import tee
from cchet.attest.tees.azure.hcl import RUNTIME_DATA_OFFSET, parse_hcl_report
from cchet.attest.tees.azure.report import AzureVtpmReport, parse_azure_report
from cchet.attest.tees.azure.tpm import TpmQuote, parse_tpms_attest
from cchet.attest.tees.azure.verify import (
    attestation_key_of,
    nonce_failures,
    pcr_failures,
    quote_signature_failures,
    runtime_data_failures,
    td_report_failures,
)
from cchet.attest.verify.amd import verify_snp_device
from cchet.attest.verify.options import NoCollateral, VerifyOptions, default_options
from cchet.attest.verify.roots import AMD_ARKS, INTEL_SGX_ROOT
from cchet.attest.verify.verdict import judge
from cchet.cli import main
from cchet.errors import EvidenceFormatError
from tests.conftest import fixture_path

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
CHALLENGE = b"challenge"
SNP = "trustee/az_snp_vtpm/"
TDX = "trustee/az_tdx_vtpm/"


@pytest.fixture(autouse=True)
def _warnings_are_errors() -> Iterator[None]:
    with warnings.catch_warnings():  # real VCEKs carry serial 0: only cchet's own silencing may apply
        warnings.simplefilter("error")
        yield


class AmdRoots(NoCollateral):
    """A collateral source stand-in serving the fixtures' AMD Milan ASK and ARK (and nothing else)."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    def amd_chain(self, product: str, key: str, now: dt.datetime) -> bytes | None:
        self.asked.append((product, key))
        return fixture_path("amd_roots/ask_ark_milan.pem").read_bytes() if (product, key) == ("Milan", "vcek") else None


def opts(collateral: Any = None) -> VerifyOptions:
    return default_options(now=NOW, collateral=collateral if collateral is not None else AmdRoots())


def evidence(name: str) -> AzureVtpmReport:
    report = parse_azure_report(fixture_path(name).read_bytes())
    assert report.to_bytes() == parse_azure_report(report.to_bytes()).to_bytes()
    return report


def checks(failures: list[str]) -> set[str]:
    return {getattr(f, "check", "?") for f in failures}


def hcl(name: str, edit: tuple[int, int] | None = None) -> Any:
    raw = bytearray(fixture_path(name).read_bytes())
    if edit is not None:
        raw[edit[0]] = edit[1] % 256
    return parse_hcl_report(bytes(raw))


def tpm_quote_v1(name: str) -> tuple[TpmQuote, tuple[bytes, ...]]:
    doc = json.loads(fixture_path(name).read_text())
    attest = parse_tpms_attest(bytes.fromhex(doc["message"]))
    return TpmQuote(attest, bytes.fromhex(doc["signature"])), tuple(bytes.fromhex(p) for p in doc["pcrs"])


def bincode_quote(name: str) -> tuple[TpmQuote, tuple[bytes, ...]]:
    """The pre-298f8921 bincode layout: u64-LE length + signature, u64-LE length + message, u64-LE count + PCRs."""
    raw = fixture_path(name).read_bytes()
    at, parts = 0, []
    for _ in range(2):
        (size,) = struct.unpack_from("<Q", raw, at)
        parts.append(raw[at + 8 : at + 8 + size])
        at += 8 + size
    (count,) = struct.unpack_from("<Q", raw, at)
    at += 8
    pcrs = tuple(raw[at + 32 * i : at + 32 * (i + 1)] for i in range(count))
    assert at + 32 * count == len(raw)
    return TpmQuote(parse_tpms_attest(parts[1]), parts[0]), pcrs


# -- Azure SEV-SNP ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["evidence-v0.json", "evidence-v1.json"])
def test_snp_evidence_verifies_end_to_end(name: str) -> None:
    """``test_evaluate`` (v0, v1): verifies, with report_data "challenge" and pcr00 e15c4479..."""
    report = evidence(SNP + name)
    source = AmdRoots()
    device, failures = tee("az-snp").verify(report, b"", opts(source), expected_report_data=CHALLENGE)
    assert failures == []
    assert device.anchor == AMD_ARKS["Milan"].sha256 and not device.simulated and device.kind == "az-snp"
    assert source.asked == [("Milan", "vcek")]
    claims = tee("az-snp").claims(report)
    assert report.report_data.hex() == "6368616c6c656e6765"
    assert claims["pcrs"]["0"] == "e15c44796beabf46abcec7c57e590942041e47497e4ec27571c8b7664f48dced"
    assert claims["init_data"] == "00" * 32 and claims["pcrs"]["11"] == "00" * 32
    assert claims["vmpl"] == 0 and claims["policy"] == "0x3001f" and claims["reported_tcb"] == [4, 0, 24, 0xDB]
    _, failures = tee("az-snp").verify(report, b"", opts(), expected_report_data=b"egnellahc")
    assert checks(failures) == {"azure.nonce"}


def test_snp_evidence_without_the_ask_and_ark_names_what_is_missing() -> None:
    report = evidence(SNP + "evidence-v1.json")
    _, failures = tee("az-snp").verify(report, b"", opts(CollateralSource()), expected_report_data=CHALLENGE)
    assert checks(failures) == {"amd.chain"}

    class Offline:
        def get(self, url: str) -> Any:
            raise FetchError(f"{url}: network unreachable")

    _, failures = tee("az-snp").verify(
        report, b"", opts(CollateralSource(None, Offline())), expected_report_data=CHALLENGE
    )
    assert "amd.certificates_missing" in checks(failures)
    assert any("kdsintf.amd.com" in f and "network unreachable" in f for f in failures)


def test_snp_hcl_report_and_vcek_pem() -> None:
    """``test_verify_snp_report`` (Ok) and ``_failure`` (HCL byte 0x1A6 = 0: the SNP SPL, "SNP version mismatch")."""
    certs = fixture_path(SNP + "vcek.pem").read_bytes()
    good = hcl(SNP + "hcl-report.bin")
    device, failures = verify_snp_device(good.hardware, certs, opts())
    assert failures == [] and device.anchor == AMD_ARKS["Milan"].sha256
    assert good.hardware.version == 2 and good.hardware.vmpl == 0
    bad = hcl(SNP + "hcl-report.bin", (0x1A6, 0))
    assert checks(verify_snp_device(bad.hardware, certs, opts())[1]) == {"amd.reported_tcb", "amd.report_signature"}


def test_snp_hcl_report_binds_its_runtime_data() -> None:
    """``test_verify_report_data`` (Ok) and ``_failure`` (HCL byte 0x6E0 += 1, inside the runtime data JSON)."""
    good = hcl(SNP + "hcl-report.bin")
    assert runtime_data_failures(good, good.hardware.report_data) == []
    assert good.hardware.report_data[:32].hex().startswith("b3fbad65")
    assert RUNTIME_DATA_OFFSET <= 0x6E0 < RUNTIME_DATA_OFFSET + len(good.runtime_data)
    raw = fixture_path(SNP + "hcl-report.bin").read_bytes()
    bad = hcl(SNP + "hcl-report.bin", (0x6E0, raw[0x6E0] + 1))
    assert checks(runtime_data_failures(bad, bad.hardware.report_data)) == {"azure.runtime_data"}


@pytest.mark.parametrize(("family", "quote_file"), [(SNP, "tpm-quote-v1.json"), (TDX, "tpm-quote-v1.json")])
def test_tpm_quote_signed_by_the_hcl_attestation_key(family: str, quote_file: str) -> None:
    """``test_verify_signature`` / ``test_verify_tpm_signature`` (Ok) and the signature bit flip (error); SNP's
    ``test_verify_akpub_failure`` (HCL byte 0x540 = 0, inside the AK JWK: "Failed to get AKpub")."""
    quote, _ = tpm_quote_v1(family + quote_file)
    key, failures = attestation_key_of(hcl(family + "hcl-report.bin"))
    assert failures == [] and key is not None
    assert quote_signature_failures(quote, key) == []
    flipped = TpmQuote(quote.attest, bytes([quote.signature[0] ^ 1]) + quote.signature[1:])
    assert checks(quote_signature_failures(flipped, key)) == {"azure.quote_signature"}
    if family == SNP:
        key, failures = attestation_key_of(hcl(family + "hcl-report.bin", (0x540, 0)))
        assert key is None and checks(failures) == {"azure.ak"}


@pytest.mark.parametrize("family", [SNP, TDX])
def test_tpm_quote_nonce_and_pcrs(family: str) -> None:
    """``test_verify_quote_nonce`` / ``test_verify_tpm_nonce`` ("challenge" Ok, "egnellahc" error) and
    ``test_verify_pcrs`` (Ok; a PCR0 bit flip is an error)."""
    quote, pcrs = tpm_quote_v1(family + "tpm-quote-v1.json")
    assert nonce_failures(quote, CHALLENGE) == []
    assert checks(nonce_failures(quote, b"egnellahc")) == {"azure.nonce"}
    assert pcr_failures(quote, pcrs) == []
    flipped = (bytes([pcrs[0][0] ^ 1]) + pcrs[0][1:], *pcrs[1:])
    assert checks(pcr_failures(quote, flipped)) == {"azure.pcr_digest"}
    assert quote.attest.pcr_select[0].indices == tuple(range(24))


def test_snp_init_data_is_pcr8_extended_once_from_zero() -> None:
    """``test_verify_init_data`` (Ok) and ``_failure``; ``test_extend_claim``'s claims."""
    pcr8 = bytes.fromhex("bddaccb9c52249e97a31baea61b7d91be8221a16e703d92148d04fb8e9c1dfdd")
    init_data_hash = bytes.fromhex("8505e4e25e50a27c5dc8147af88efbece627fbea55291911eff832d9ee127781")
    assert hashlib.sha256(bytes(32) + init_data_hash).digest() == pcr8
    flipped = bytes([pcr8[0] ^ 1]) + pcr8[1:]
    assert hashlib.sha256(bytes(32) + flipped).digest() != pcr8
    quote, pcrs = tpm_quote_v1(SNP + "tpm-quote-v1.json")
    report = AzureVtpmReport(hcl(SNP + "hcl-report.bin"), quote, (*pcrs[:8], pcr8, *pcrs[9:]))
    claims = tee("az-snp").claims(report)
    assert len(claims["pcrs"]) == 24 and claims["init_data"] == pcr8.hex()
    assert report.report_data.hex() == "6368616c6c656e6765"
    assert claims["pcrs"]["0"] == "f3a7e99a5f819a034386bce753a48a73cfdaa0bea0ecfc124bedbf5a8c4799be"


@pytest.mark.parametrize("family", [SNP, TDX])
def test_bincode_quote_is_the_v1_quote(family: str) -> None:
    """``quote.bin`` (no test at HEAD; used until 298f8921): the same quote as tpm-quote-v1.json, and it
    passes the same checks."""
    assert bincode_quote(family + "quote.bin") == tpm_quote_v1(family + "tpm-quote-v1.json")
    quote, pcrs = bincode_quote(family + "quote.bin")
    key, _ = attestation_key_of(hcl(family + "hcl-report.bin"))
    assert key is not None and quote_signature_failures(quote, key) == [] and pcr_failures(quote, pcrs) == []


def test_legacy_quote_message_and_signature() -> None:
    """``tpm-quote.msg`` / ``.sig`` (no test at HEAD): a quote over PCRs 0-7 and 14 qualified by "challenge";
    its signature does not verify with the AK of the current hcl-report.bin (it belonged to a removed one)."""
    attest = parse_tpms_attest(fixture_path(SNP + "tpm-quote.msg").read_bytes())
    assert attest.extra_data == CHALLENGE and attest.pcr_select[0].indices == (*range(8), 14)
    key, _ = attestation_key_of(hcl(SNP + "hcl-report.bin"))
    assert key is not None
    quote = TpmQuote(attest, fixture_path(SNP + "tpm-quote.sig").read_bytes())
    assert checks(quote_signature_failures(quote, key)) == {"azure.quote_signature"}


# -- Azure TDX --------------------------------------------------------------------------------------------


def test_tdx_evidence_verifies_all_but_the_missing_intel_collateral() -> None:
    """``test_evaluate`` (v0; ``#[ignore]`` upstream, it needs live Intel PCS): offline, every check but the
    Intel collateral passes, and the failure says which collateral for which FMSPC is missing."""
    report = evidence(TDX + "evidence-v0.json")
    device, failures = tee("az-tdx").verify(report, b"", opts(CollateralSource()), expected_report_data=CHALLENGE)
    assert checks(failures) == {"intel.collateral_missing"}
    assert "FMSPC 00806F050000" in failures[0]
    assert device.anchor == INTEL_SGX_ROOT.sha256 and device.tcb_status is None
    claims = tee("az-tdx").claims(report)
    assert report.report_data.hex() == "6368616c6c656e6765"
    assert claims["pcrs"]["0"] == "782b20b10f55cc46e2142cc2145d548698073e5beb82752c8d7f9279f0d8a273"
    assert claims["mrtd"].startswith("024a32b070383331") and claims["td_attributes"] == "00" * 8

    class Offline:
        def get(self, url: str) -> Any:
            raise FetchError(f"{url}: network unreachable")

    _, failures = tee("az-tdx").verify(report, b"", opts(CollateralSource(None, Offline())), expected_report_data=None)
    assert checks(failures) == {"intel.collateral_missing"}
    assert any("fetching the Intel collateral failed" in f and "network unreachable" in f for f in failures)


def test_tdx_evidence_parts_are_the_standalone_files() -> None:
    report = evidence(TDX + "evidence-v0.json")
    assert report.hcl.to_bytes() == fixture_path(TDX + "hcl-report.bin").read_bytes()
    assert report.td_quote is not None
    assert report.td_quote.to_bytes() == fixture_path(TDX + "td-quote.bin").read_bytes()
    assert (report.quote, report.pcrs) == tpm_quote_v1(TDX + "tpm-quote-v1.json")


def test_tdx_hcl_report_binds_its_runtime_data_through_the_td_quote() -> None:
    """``test_verify_hcl_var_data`` (Ok) and ``_failure`` (HCL byte 0x880 += 1: "TDX Quote report data
    mismatch"); the TDREPORT agrees with the TD quote (cchet's ``azure.td_report``)."""
    quote = parse_quote(fixture_path(TDX + "td-quote.bin").read_bytes())
    good = hcl(TDX + "hcl-report.bin")
    assert runtime_data_failures(good, quote.report_data) == []
    assert td_report_failures(good.hardware, quote) == []
    raw = fixture_path(TDX + "hcl-report.bin").read_bytes()
    bad = hcl(TDX + "hcl-report.bin", (0x880, raw[0x880] + 1))
    assert checks(runtime_data_failures(bad, quote.report_data)) == {"azure.runtime_data"}


# -- the command line ---------------------------------------------------------------------------------------


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["verify", *args, "--at", "2026-06-01T00:00:00Z"])
    return code, capsys.readouterr().out


def test_cli_verify_reproduces_the_snp_verdict(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """``cchet verify --kind az-snp --nonce 6368616c6c656e6765`` on the fixtures: verifies, with the ASK/ARK
    given by ``--certs`` or from a ``--collateral`` cache folder; the policy pins what from-evidence wrote."""
    milan = str(fixture_path("amd_roots/ask_ark_milan.pem"))
    for name in ("evidence-v0.json", "evidence-v1.json"):
        path = str(fixture_path(SNP + name))
        base = ("--kind", "az-snp", "--nonce", CHALLENGE.hex())
        code, out = _cli(capsys, path, *base, "--certs", milan, "--verify-only")
        assert code == 0 and out.startswith("OK: az-snp evidence verifies"), out
        code, out = _cli(capsys, path, "--kind", "az-snp", "--nonce", b"egnellahc".hex(), "--certs", milan, "--json")
        doc = json.loads(out)
        assert code == 1 and [f["check"] for f in doc["failures"]] == ["azure.nonce"]
        assert doc["failures"][0]["error"] == "NonceMismatchError"
        cache = CollateralCache(tmp_path / "cache")
        cache.put("amd-chain", "Milan-vcek", fixture_path("amd_roots/ask_ark_milan.pem").read_bytes())
        code, out = _cli(capsys, path, *base, "--collateral", str(tmp_path / "cache"), "--verify-only")
        assert code == 0, out
        binary = tmp_path / f"{name}.bin"
        binary.write_bytes(evidence(SNP + name).to_bytes())
        policy = tmp_path / f"{name}.toml"
        assert main(["policy", "from-evidence", str(binary), "-o", str(policy)]) == 0
        capsys.readouterr()
        code, out = _cli(capsys, path, *base, "--certs", milan, "--policy", str(policy))
        assert code == 0 and out.startswith("OK: az-snp evidence verifies"), out
        text = policy.read_text()
        assert "[az_snp]" in text and '"11" = [' in text
        policy.write_text(text.replace(report_measurement(name), "00" * 48))
        code, out = _cli(capsys, path, *base, "--certs", milan, "--policy", str(policy))
        assert code == 1 and "policy.az_snp.measurement" in out, out


def report_measurement(name: str) -> str:
    hardware = evidence(SNP + name).hcl.hardware
    return hardware.measurement.hex()  # type: ignore[union-attr]


def test_cli_verify_tdx_names_the_missing_collateral(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = str(fixture_path(TDX + "evidence-v0.json"))
    code, out = _cli(
        capsys, path, "--kind", "az-tdx", "--nonce", CHALLENGE.hex(), "--verify-only", "--collateral", str(tmp_path)
    )
    assert code == 1 and "no Intel collateral (TCB info, QE identity, CRLs) for FMSPC 00806F050000" in out
    assert out.count("\n  - ") == 1, out


def test_judge_takes_a_lone_report_and_certificates() -> None:
    report = evidence(SNP + "evidence-v1.json")
    certs = fixture_path("amd_roots/ask_ark_milan.pem").read_bytes()
    verdict = judge(report, opts(CollateralSource()), certificates=certs, nonce=CHALLENGE, verify_only=True)
    assert verdict.ok and verdict.kind == "az-snp"
    assert judge(CompositeEvidence(CpuEvidence(report, certs)), opts(CollateralSource()), verify_only=True).ok


# -- tampering with real evidence -------------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), xor=st.integers(1, 255))
def test_a_changed_byte_in_a_signed_part_of_real_evidence_never_verifies(data: Any, xor: int) -> None:
    report = evidence(SNP + "evidence-v1.json")
    raw = report.to_bytes()
    spans, at = [], 8
    while at < len(raw):
        size = int.from_bytes(raw[at : at + 4], "little")
        spans.append((at + 4, at + 4 + size))
        at += 4 + size
    hcl_at = spans[0][0]
    regions = {
        "snp_report": (hcl_at + 0x20, hcl_at + 0x20 + 0x2A0 + 144),
        "runtime_data": (hcl_at + RUNTIME_DATA_OFFSET, hcl_at + RUNTIME_DATA_OFFSET + len(report.hcl.runtime_data)),
        "tpms_attest": spans[1],
        "signature": spans[2],
        "pcrs": spans[3],
        "vcek": spans[4],
    }
    name = data.draw(st.sampled_from(sorted(regions)))
    offset = data.draw(st.integers(*regions[name]).filter(lambda o: o < regions[name][1]))
    tampered = bytearray(raw)
    tampered[offset] ^= xor
    with contextlib.suppress(EvidenceFormatError):
        changed = parse_azure_report(bytes(tampered), "az-snp")
        _, failures = tee("az-snp").verify(changed, b"", opts(), expected_report_data=CHALLENGE)
        assert failures, f"byte {offset} of {name} changed and the real evidence still verifies"
