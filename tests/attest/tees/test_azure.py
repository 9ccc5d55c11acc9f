"""Azure vTPM kinds (az-snp, az-tdx): every check fails alone on simulated evidence, the pipeline accepts clean
simulated evidence, and the policy tables decide what they say."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from cchet.attest.appraise import appraise
from cchet.attest.binding import Binding
from cchet.attest.evidence import CompositeEvidence, CpuEvidence, decode_composite
from cchet.attest.formats import parse
from cchet.attest.policy import Policy
from cchet.attest.reference import is_simulated, reference_policy
from cchet.attest.simulate import SimulatedAuthority, simulate_composite, simulation_options
from cchet.attest.simulate.snp import DEFAULT_POLICY
from cchet.attest.tees import tee
from cchet.attest.tees.azure import CHECKS, TEES
from cchet.attest.tees.azure.report import AzureVtpmReport
from cchet.attest.tees.azure.simulate import KEY_SUBDIR, SimulatedVtpm, simulated_pcrs
from cchet.attest.verify.checks import CHECKS as ALL_CHECKS
from cchet.attest.verify.failure import raise_failures
from cchet.attest.verify.options import VerifyOptions
from cchet.cli import main
from tests.attest.conftest import NOW

KINDS = ("az-snp", "az-tdx")
REPORT_DATA = bytes(range(64))


def options(authority: SimulatedAuthority) -> VerifyOptions:
    return simulation_options(authority, now=NOW)


def simulate(authority: SimulatedAuthority, kind: str, **fields: Any) -> tuple[AzureVtpmReport, bytes]:
    report, certs = tee(kind).simulate(authority, report_data=REPORT_DATA, **fields)
    assert isinstance(report, AzureVtpmReport)
    return report, certs


def failures_of(
    authority: SimulatedAuthority, report: AzureVtpmReport, certs: bytes, expected: bytes | None = None
) -> list[str]:
    return tee(report.kind).verify(report, certs, options(authority), expected_report_data=expected)[1]


def failed(failures: list[str]) -> set[str]:
    return {getattr(f, "check", "?") for f in failures}


def _other_runtime_data(report: AzureVtpmReport) -> bytes:
    doc = json.loads(report.hcl.runtime_data)
    doc["vm-configuration"]["console-enabled"] = True
    return json.dumps(doc, separators=(",", ":")).encode()


def case(authority: SimulatedAuthority, check: str) -> list[str]:
    """Simulated evidence with exactly one thing changed, so that ``check`` alone fails ("none": nothing)."""
    kind = "az-tdx" if check == "azure.td_report" else "az-snp"
    report, certs = simulate(authority, kind)
    expected = None
    if check == "azure.runtime_data":  # the hardware report binds other runtime data (same AK)
        hcl = dataclasses.replace(report.hcl, runtime_data=_other_runtime_data(report))
        report = dataclasses.replace(report, hcl=hcl)
    elif check == "azure.ak":  # runtime data without the AK, bound by the hardware report
        report, certs = simulate(authority, kind, runtime_data=b'{"keys":[],"user-data":""}')
    elif check == "azure.quote_signature":
        sig = bytes([report.quote.signature[0] ^ 1]) + report.quote.signature[1:]
        report = dataclasses.replace(report, quote=dataclasses.replace(report.quote, signature=sig))
    elif check == "azure.pcr_digest":
        report = dataclasses.replace(report, pcrs=(bytes(32), *report.pcrs[1:]))
    elif check == "azure.td_report":  # the HCL's TDREPORT names another MRTD than the signed TD quote
        hcl = dataclasses.replace(report.hcl, hardware=dataclasses.replace(report.hcl.hardware, mr_td=bytes(48)))
        report = dataclasses.replace(report, hcl=hcl)
    elif check == "azure.nonce":
        expected = bytes(64)
    elif check != "none":
        raise AssertionError(check)
    return failures_of(authority, report, certs, expected)


AZURE_CHECKS = sorted(c.id for c in CHECKS)


@pytest.mark.parametrize("kind", KINDS)
def test_clean_baseline_has_no_failure(authority: SimulatedAuthority, kind: str) -> None:
    report, certs = simulate(authority, kind)
    device, failures = tee(kind).verify(report, certs, options(authority), expected_report_data=REPORT_DATA)
    assert failures == [] and device.simulated and device.kind == kind and device.anchor
    if kind == "az-tdx":
        assert device.tcb_status == "UpToDate"
    assert case(authority, "none") == []


@pytest.mark.parametrize("check", AZURE_CHECKS)
def test_only_this_check_fails(authority: SimulatedAuthority, check: str) -> None:
    failures = case(authority, check)
    assert failed(failures) == {check}, failures
    with pytest.raises(ALL_CHECKS[check].error):
        raise_failures(failures)


def test_every_check_is_registered_with_the_others() -> None:
    assert set(AZURE_CHECKS) <= set(ALL_CHECKS)
    assert all(c.id.startswith("azure.") for c in CHECKS)


@pytest.mark.parametrize("kind", KINDS)
def test_hardware_failures_are_the_vendor_checks(authority: SimulatedAuthority, kind: str) -> None:
    """The hardware report is verified by cchet's SNP and DCAP verifiers: their checks report its faults."""
    report, certs = simulate(authority, kind)
    if kind == "az-snp":
        snp = dataclasses.replace(report.hcl.hardware, measurement=bytes(48))
        report = dataclasses.replace(report, hcl=dataclasses.replace(report.hcl, hardware=snp))
        assert failed(failures_of(authority, report, certs)) == {"amd.report_signature"}
        assert failed(failures_of(authority, report, b"")) >= {"amd.chain"}
    else:
        assert report.td_quote is not None
        body = dataclasses.replace(report.td_quote.body, mr_td=bytes(48))
        report = dataclasses.replace(report, td_quote=dataclasses.replace(report.td_quote, body=body))
        assert failed(failures_of(authority, report, certs)) == {"intel.quote_signature", "azure.td_report"}


def test_the_simulated_root_of_another_authority_is_not_trusted(authority: SimulatedAuthority, tmp_path: Path) -> None:
    other = SimulatedAuthority.open(tmp_path / "other")
    for kind, check in (("az-snp", "amd.chain"), ("az-tdx", "intel.pck_chain")):
        report, certs = simulate(other, kind)
        assert check in failed(failures_of(authority, report, certs))


# -- the pipeline ----------------------------------------------------------------------------------------


def _binding() -> tuple[bytes, Binding]:
    binding = Binding(
        broker_id=os.urandom(32),
        kem_id=0x0020,
        kdf_id=0x0001,
        aead_id=0x0003,
        public_key=os.urandom(32),
        request_digest=os.urandom(32),
    )
    return os.urandom(32), binding


@pytest.mark.parametrize("kind", KINDS)
def test_appraise_accepts_bound_simulated_evidence_and_says_simulated(authority: SimulatedAuthority, kind: str) -> None:
    nonce, binding = _binding()
    evidence = simulate_composite(authority, kind, nonce=nonce, binding=binding)
    assert decode_composite(evidence.to_bytes()) == evidence
    section = kind.replace("-", "_")
    report = evidence.cpu.report
    policy = Policy(allow_simulation=True, tee_kinds=(kind,), **{section: {"pcrs": {"11": [report.pcrs[11].hex()]}}})
    result = appraise(evidence, policy, nonce=nonce, binding=binding, options=options(authority))
    assert result.accepted and result.simulated, result
    assert "SIMULATED" in str(result)
    assert report.simulated and is_simulated(evidence)
    claims = result.devices[0].claims
    assert claims["kind"] == kind and claims["report_data"] == report.report_data.hex()
    assert claims["pcrs"]["11"] == report.pcrs[11].hex() and len(claims["pcrs"]) == 24
    other_nonce, _ = _binding()
    refused = appraise(evidence, policy, nonce=other_nonce, binding=binding, options=options(authority))
    assert [v.rule for v in refused.violations] == ["require_binding"]


@pytest.mark.parametrize("kind", KINDS)
def test_simulated_evidence_is_refused_without_allow_simulation(authority: SimulatedAuthority, kind: str) -> None:
    nonce, binding = _binding()
    evidence = simulate_composite(authority, kind, nonce=nonce, binding=binding)
    policy = Policy(tee_kinds=(kind,), measurements="any")
    result = appraise(evidence, policy, nonce=nonce, binding=binding, options=options(authority))
    assert not result.accepted and "allow_simulation" in [v.rule for v in result.violations]


def test_az_tdx_tcb_status_is_judged_by_min_tcb_status(authority: SimulatedAuthority) -> None:
    nonce, binding = _binding()
    evidence = simulate_composite(authority, "az-tdx", nonce=nonce, binding=binding)
    policy = Policy(allow_simulation=True, tee_kinds=("az-tdx",))
    opts = simulation_options(authority, now=NOW, tcb_status="OutOfDate", advisory_ids=["INTEL-SA-00837"])
    result = appraise(evidence, policy, nonce=nonce, binding=binding, options=opts)
    assert {v.rule for v in result.violations} == {"min_tcb_status", "accepted_advisories"}
    lenient = Policy(
        allow_simulation=True,
        tee_kinds=("az-tdx",),
        min_tcb_status="OutOfDate",
        accepted_advisories=["INTEL-SA-00837"],
    )
    assert appraise(evidence, lenient, nonce=nonce, binding=binding, options=opts).accepted


def test_formats_parse_detects_each_kind(authority: SimulatedAuthority) -> None:
    for kind in KINDS:
        report, _ = simulate(authority, kind)
        raw = report.to_bytes()
        assert parse(raw) == report and parse(raw, kind) == report and parse(raw.hex().encode()) == report
        assert TEES[kind].detect(raw) and not TEES["az-tdx" if kind == "az-snp" else "az-snp"].detect(raw)
    with pytest.raises(Exception, match="az-snp evidence, expected az-tdx"):
        parse(simulate(authority, "az-snp")[0].to_bytes(), "az-tdx")


def test_the_vendor_report_is_what_collateral_is_for(
    authority: SimulatedAuthority, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snp, tdx = simulate(authority, "az-snp")[0], simulate(authority, "az-tdx")[0]
    assert snp.vendor_report is snp.hcl.hardware and tdx.vendor_report is tdx.td_quote
    # cchet collateral fetch asks AMD's KDS for the SNP report inside (a dead one here: each piece is named)
    evidence = tmp_path / "az-snp.bin"
    evidence.write_bytes(snp.to_bytes())
    dead = "http://127.0.0.1:9"
    code = main(["collateral", "fetch", str(evidence), "--cache", str(tmp_path / "c"), "--amd-kds", dead])
    out = capsys.readouterr().out
    assert code == 1 and "AMD" in out and "NOT available" in out


def test_the_tees_follow_the_protocol() -> None:
    for kind, family in TEES.items():
        assert family.kind == kind and family.section == kind.replace("-", "_")
        assert family.vendors == ({"az-snp": "amd", "az-tdx": "intel"}[kind],)
        assert family.interfaces and family.description
        assert family.simulated_anchors(None) == ()  # type: ignore[arg-type]


# -- the simulator ---------------------------------------------------------------------------------------


def test_the_vtpm_keys_live_in_a_subfolder_made_on_first_use(tmp_path: Path) -> None:
    authority = SimulatedAuthority.open(tmp_path / "a")
    folder = tmp_path / "a" / KEY_SUBDIR
    assert not folder.exists()
    report, _ = simulate(authority, "az-snp")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {"ak.key": 0o600, "ek.key": 0o600}
    again = SimulatedVtpm.open(SimulatedAuthority.open(tmp_path / "a"))
    assert again.ak.public_key().public_numbers() == SimulatedVtpm.open(authority).ak.public_key().public_numbers()
    config = json.loads(report.hcl.runtime_data)["vm-configuration"]
    assert config["vmUniqueId"].startswith("SIMULATED")
    assert report.vcek and b"SIMULATED" in report.vcek


def test_simulator_fields_reach_the_report(authority: SimulatedAuthority) -> None:
    snp, _ = simulate(authority, "az-snp", measurement=bytes(range(48)), debug=True, pcrs={11: b"\x11" * 32})
    assert snp.hcl.hardware.measurement == bytes(range(48)) and snp.debug  # type: ignore[union-attr]
    assert snp.pcrs[11] == b"\x11" * 32 and snp.pcrs[0] == simulated_pcrs()[0]
    tdx, certs = simulate(authority, "az-tdx", mr_td=b"\x01" * 48, debug=True)
    assert tdx.td_quote is not None and tdx.td_quote.body.mr_td == b"\x01" * 48 and tdx.debug and certs == b""
    assert tdx.hcl.hardware.mr_td == b"\x01" * 48  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="report_data"):
        tee("az-snp").simulate(authority, report_data=bytes(65))
    with pytest.raises(ValueError, match="PCR"):
        simulate(authority, "az-snp", pcrs={24: bytes(32)})


# -- policy tables ----------------------------------------------------------------------------------------


def _violations(
    authority: SimulatedAuthority, kind: str, table: dict[str, Any], **fields: Any
) -> list[tuple[str, str]]:
    nonce, binding = _binding()
    evidence = simulate_composite(authority, kind, nonce=nonce, binding=binding, cpu=fields)
    policy = Policy(allow_simulation=True, tee_kinds=(kind,), **{kind.replace("-", "_"): table})
    result = appraise(evidence, policy, nonce=nonce, binding=binding, options=options(authority))
    assert not result.verification_failures, result.verification_failures
    return [(v.rule, v.evidence_field) for v in result.violations]


def test_az_snp_table_rules(authority: SimulatedAuthority) -> None:
    bad = "00" * 48
    assert _violations(authority, "az-snp", {"measurement": [bad]}) == [
        ("az_snp.measurement", "snp_report.measurement")
    ]
    assert _violations(authority, "az-snp", {"host_data": ["11" * 32]}) == [
        ("az_snp.host_data", "snp_report.host_data")
    ]
    assert _violations(authority, "az-snp", {"min_tcb": [99, 0, 0, 0]}) == [
        ("az_snp.min_tcb", "snp_report.reported_tcb")
    ]
    assert _violations(authority, "az-snp", {"min_tcb": {"bootloader": 1, "tee": 0, "snp": 1, "microcode": 1}}) == []
    assert _violations(authority, "az-snp", {}, vmpl=2) == [("az_snp.vmpl", "snp_report.vmpl")]
    assert _violations(authority, "az-snp", {"vmpl": 2}, vmpl=2) == []
    migrating = DEFAULT_POLICY | (1 << 18)
    assert _violations(authority, "az-snp", {}, policy=migrating) == [
        ("az_snp.allow_migration_agent", "snp_report.policy.MIGRATE_MA")
    ]
    assert _violations(authority, "az-snp", {"allow_migration_agent": True}, policy=migrating) == []
    assert _violations(authority, "az-snp", {"pcrs": {"7": ["22" * 32]}}) == [("az_snp.pcrs", "tpm.pcr07")]
    assert _violations(authority, "az-snp", {}, debug=True) == [("allow_debug", "az-snp.debug")]


def test_az_tdx_table_rules(authority: SimulatedAuthority) -> None:
    bad = "ff" * 48
    for field, evidence_field in (
        ("mrtd", "td_quote.mr_td"),
        ("rtmr0", "td_quote.rtmr0"),
        ("rtmr3", "td_quote.rtmr3"),
        ("mrconfigid", "td_quote.mr_config_id"),
    ):
        assert _violations(authority, "az-tdx", {field: [bad]}) == [(f"az_tdx.{field}", evidence_field)]
    assert _violations(authority, "az-tdx", {"pcrs": {"0": ["33" * 32], "23": ["44" * 32]}}) == [
        ("az_tdx.pcrs", "tpm.pcr00"),
        ("az_tdx.pcrs", "tpm.pcr23"),
    ]
    assert _violations(authority, "az-tdx", {}, debug=True) == [("allow_debug", "az-tdx.debug")]


def test_a_pcr_the_quote_does_not_select_is_a_violation(authority: SimulatedAuthority) -> None:
    report, _ = simulate(authority, "az-snp")
    fails: list[tuple[str, str]] = []
    partial = dataclasses.replace(report, pcrs=report.pcrs[:5])  # verification would refuse it; rules say why
    tee("az-snp").evaluate(partial, {"pcrs": {"11": ["55" * 32]}}, lambda r, f, e, a: fails.append((r, str(a))))
    assert fails == [("az_snp.pcrs", "not quoted")]


@pytest.mark.parametrize(
    ("section", "table", "message"),
    [
        ("az_snp", {"mrtd": ["00" * 48]}, r"policy.az_snp: unknown field\(s\) mrtd"),
        ("az_snp", {"measurement": ["00" * 47]}, r"policy.az_snp.measurement: .* 47 bytes"),
        ("az_snp", {"measurement": "zz"}, r"not hex"),
        ("az_snp", {"min_tcb": [1, 2, 3]}, r"policy.az_snp.min_tcb"),
        ("az_snp", {"min_tcb": {"bootloader": 1}}, r"policy.az_snp.min_tcb"),
        ("az_snp", {"vmpl": 4}, r"policy.az_snp.vmpl"),
        ("az_snp", {"allow_migration_agent": 1}, r"policy.az_snp.allow_migration_agent"),
        ("az_tdx", {"pcrs": {"24": ["00" * 32]}}, r"policy.az_tdx.pcrs: '24' is not a PCR"),
        ("az_tdx", {"pcrs": ["00" * 32]}, r"policy.az_tdx.pcrs: expected a table"),
        ("az_tdx", {"pcrs": {"1": ["00" * 48]}}, r"policy.az_tdx.pcrs.1: .* 48 bytes"),
        ("az_tdx", {"measurement": ["00" * 48]}, r"unknown field\(s\) measurement"),
    ],
)
def test_tables_are_validated_naming_the_field(section: str, table: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Policy(**{section: table})


def test_pins_and_measurements_pinned(authority: SimulatedAuthority) -> None:
    assert not Policy(az_snp={"vmpl": 0}).pins_cpu("az-snp")
    assert not Policy(az_snp={"pcrs": {}}).pins_cpu("az-snp")
    assert Policy(az_snp={"measurement": ["00" * 48]}).pins_cpu("az-snp")
    assert Policy(az_snp={"pcrs": {"11": ["00" * 32]}}).pins_cpu("az-snp")
    assert Policy(az_tdx={"rtmr2": ["00" * 48]}).pins_cpu("az-tdx")
    assert not Policy(az_tdx={"mrconfigid": ["00" * 48]}).pins_cpu("az-tdx")
    nonce, binding = _binding()
    evidence = simulate_composite(authority, "az-snp", nonce=nonce, binding=binding)
    real_like = Policy(tee_kinds=("az-snp",))
    result = appraise(evidence, real_like, nonce=nonce, binding=binding, options=options(authority))
    assert "measurements" in [v.rule for v in result.violations]


def test_toml_round_trip_of_a_table(tmp_path: Path) -> None:
    policy = Policy(
        tee_kinds=("az-snp", "az-tdx"),
        az_snp={"measurement": ["AA" * 48], "min_tcb": [1, 2, 3, 4], "pcrs": {11: ["bb" * 32]}, "vmpl": 1},
        az_tdx={"mrtd": ["cc" * 48], "pcrs": {"4": ["dd" * 32, "ee" * 32]}},
    )
    path = tmp_path / "p.toml"
    path.write_text(policy.to_toml())
    assert Policy.from_file(path) == policy
    assert policy.az_snp["pcrs"] == {"11": ("bb" * 32,)} and policy.az_snp["measurement"] == ("aa" * 48,)


@pytest.mark.parametrize("kind", KINDS)
def test_reference_policy_pins_the_evidence(authority: SimulatedAuthority, kind: str) -> None:
    nonce, binding = _binding()
    evidence = simulate_composite(authority, kind, nonce=nonce, binding=binding)
    policy = reference_policy([evidence], allow_simulation=True)
    table = policy.table(kind)
    assert policy.tee_kinds == (kind,) and policy.pins_cpu(kind)
    assert sorted(table["pcrs"], key=int) == ["4", "7", "8", "9", "11"]
    assert appraise(evidence, policy, nonce=nonce, binding=binding, options=options(authority)).accepted
    changed = simulate_composite(authority, kind, nonce=nonce, binding=binding, cpu={"pcrs": {4: bytes(32)}})
    refused = appraise(changed, policy, nonce=nonce, binding=binding, options=options(authority))
    assert [v.rule for v in refused.violations] == [f"{kind.replace('-', '_')}.pcrs"]


def test_reference_policy_merges_two_reports(authority: SimulatedAuthority) -> None:
    a = simulate(authority, "az-snp")[0]
    b = simulate(authority, "az-snp", measurement=bytes(48), pcrs={11: bytes(32)})[0]
    table = reference_policy([a, b]).table("az-snp")
    assert len(table["measurement"]) == 2 and len(table["pcrs"]["11"]) == 2 and len(table["pcrs"]["4"]) == 1


def test_the_reports_claims(authority: SimulatedAuthority) -> None:
    snp, _ = simulate(authority, "az-snp", pcrs={8: b"\x08" * 32})
    claims = tee("az-snp").claims(snp)
    assert claims["init_data"] == "08" * 32 and claims["user_data"] == REPORT_DATA.hex().upper()
    assert claims["vmpl"] == 0 and claims["measurement"] == snp.hcl.hardware.measurement.hex()  # type: ignore[union-attr]
    tdx, _ = simulate(authority, "az-tdx")
    assert tdx.td_quote is not None
    assert tee("az-tdx").claims(tdx)["mrtd"] == tdx.td_quote.body.mr_td.hex()


def test_a_lone_report_becomes_composite_evidence(authority: SimulatedAuthority) -> None:
    report, certs = simulate(authority, "az-snp")
    evidence = CompositeEvidence(CpuEvidence(report, certs))
    assert decode_composite(evidence.to_bytes()).cpu.report == report
