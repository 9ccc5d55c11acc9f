"""Hygon CSV (kind ``csv``): the check table on simulated evidence, verification of simulated V1 and V2 reports, and
appraisal end to end (binding, the ``csv`` policy table, reference values, debug)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import cchet
from cchet.attest.appraise import appraise
from cchet.attest.binding import Binding
from cchet.attest.evidence import CompositeEvidence, CpuEvidence
from cchet.attest.policy import Policy
from cchet.attest.reference import is_simulated, reference_policy
from cchet.attest.simulate import SimulatedAuthority, simulate_composite, simulation_options
from cchet.attest.tees import tee
from cchet.attest.tees.csv import CHECKS
from cchet.attest.tees.csv.certs import armor
from cchet.attest.tees.csv.report import CsvReport
from cchet.attest.tees.csv.simulate import ANCHOR_NAME, FOLDER, SimulatedHygon, simulate_csv_report
from cchet.attest.tees.csv.verify import verify_csv_device
from cchet.attest.verify.checks import CHECKS as ALL_CHECKS
from cchet.attest.verify.failure import check_of, raise_failures
from cchet.attest.verify.options import NoCollateral, VerifyOptions, default_options
from cchet.attest.verify.vendor import VendorVerifier
from tests.attest.conftest import NOW

REPORT_DATA = hashlib.sha512(b"cchet csv test").digest()


def options(authority: SimulatedAuthority, **kw: Any) -> VerifyOptions:
    anchors = kw.pop("anchors", (SimulatedHygon.open(authority).anchor(),))
    return default_options(now=NOW, anchors=anchors, collateral=kw.pop("collateral", NoCollateral()), **kw)


def failed(failures: list[str]) -> set[str | None]:
    return {check_of(f) for f in failures}


def _remask(report: CsvReport, anonce: int) -> CsvReport:
    """``report`` with another V1 anonce, sig_usage and sig_algo re-masked to stay PEK/SM2: what anyone can do."""
    return report.with_tee_info(anonce=anonce, sig_usage=0x1002 ^ anonce, sig_algo=4 ^ anonce)


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


# -- the check table: simulated evidence in which exactly one check fails ------------------------------------


def _missing_hsk_cek(authority: SimulatedAuthority) -> tuple[CsvReport, bytes, bytes | None]:
    report, _ = simulate_csv_report(authority, report_data=REPORT_DATA, hsk_cek=False)
    return report, b"", None


def _hsk_signature_changed(authority: SimulatedAuthority) -> tuple[CsvReport, bytes, bytes | None]:
    report, _ = simulate_csv_report(authority, report_data=REPORT_DATA)
    hygon = SimulatedHygon.open(authority)
    hsk = dataclasses.replace(hygon.hsk, signature_r=_flip(hygon.hsk.signature_r, 3))
    return report, armor((hsk, hygon.cek)), None


def _measurement_changed_after_signing(authority: SimulatedAuthority) -> tuple[CsvReport, bytes, bytes | None]:
    report, certs = simulate_csv_report(authority, report_data=REPORT_DATA)
    return report.with_tee_info(measure=_flip(report.tee_info.measure, 0)), certs, None


def _other_nonce(authority: SimulatedAuthority) -> tuple[CsvReport, bytes, bytes | None]:
    report, certs = simulate_csv_report(authority, report_data=REPORT_DATA)
    return report, certs, bytes(64)


CASES: dict[str, Callable[[SimulatedAuthority], tuple[CsvReport, bytes, bytes | None]]] = {
    "csv.certificates_missing": _missing_hsk_cek,
    "csv.chain": _hsk_signature_changed,
    "csv.report_signature": _measurement_changed_after_signing,
    "csv.nonce": _other_nonce,
}


def test_every_csv_check_has_a_case() -> None:
    assert set(CASES) == {c.id for c in CHECKS}
    assert all(c.id in ALL_CHECKS for c in CHECKS)


@pytest.mark.parametrize("check", sorted(CASES))
def test_only_this_check_fails(authority: SimulatedAuthority, check: str) -> None:
    report, certificates, expected = CASES[check](authority)
    device, failures = verify_csv_device(report, certificates, options(authority), expected_report_data=expected)
    assert failed(failures) == {check}, failures
    assert (device.anchor == "") == (check in ("csv.certificates_missing", "csv.chain"))
    with pytest.raises(ALL_CHECKS[check].error):
        raise_failures(failures)


@pytest.mark.parametrize("version", [1, 2])
def test_clean_baseline_has_no_failure(authority: SimulatedAuthority, version: int) -> None:
    report, certificates = simulate_csv_report(authority, report_data=REPORT_DATA, version=version)
    device, failures = verify_csv_device(report, certificates, options(authority), expected_report_data=REPORT_DATA)
    assert failures == []
    assert device.simulated and device.kind == "csv"
    assert device.anchor == hashlib.sha256(SimulatedHygon.open(authority).hrk.to_bytes()).hexdigest()
    assert report.report_data == REPORT_DATA and report.version == version


# -- verification details ----------------------------------------------------------------------------------


def test_a_v1_signer_block_still_masked_verifies(authority: SimulatedAuthority) -> None:
    report, certificates = simulate_csv_report(authority, report_data=REPORT_DATA, version=1, masked_signer=True)
    assert report.signer_masked and report.signer.pek != report.pek_bytes()
    assert report.serial_number == SimulatedHygon.open(authority).serial
    assert verify_csv_device(report, certificates, options(authority))[1] == []


def test_v1_fields_are_masked_and_the_signature_covers_them_as_stored(authority: SimulatedAuthority) -> None:
    report, _ = simulate_csv_report(authority, report_data=REPORT_DATA, version=1, anonce=0x5DC7D726)
    assert report.tee_info.report_data != REPORT_DATA and report.report_data == REPORT_DATA
    assert report.sig_usage == 0x1002 and report.tee_info.sig_usage == 0x1002 ^ 0x5DC7D726
    assert report.signed_bytes() == report.to_bytes()[20 : 20 + 180]


def test_v1_anonce_is_outside_the_signature_and_only_the_binding_catches_a_change(
    authority: SimulatedAuthority,
) -> None:
    """A known V1 limit: ``anonce`` re-masks every field, and neither it nor sig_usage/sig_algo (offsets 180..191)
    is signed. Verification alone passes; the expected report data (``--nonce``) and the broker's binding do not."""
    report, certificates = simulate_csv_report(authority, report_data=REPORT_DATA, version=1)
    changed = _remask(report, report.tee_info.anonce ^ 0x01)
    assert changed.report_data != REPORT_DATA and changed.policy == report.policy ^ 0x01
    assert verify_csv_device(changed, certificates, options(authority))[1] == []
    _, failures = verify_csv_device(changed, certificates, options(authority), expected_report_data=REPORT_DATA)
    assert failed(failures) == {"csv.nonce"}


def test_a_pek_of_another_usage_cannot_sign_reports(authority: SimulatedAuthority) -> None:
    report, certificates = simulate_csv_report(authority, report_data=REPORT_DATA)
    wrong = report.with_tee_info(sig_usage=0x1004)
    _, failures = verify_csv_device(wrong, certificates, options(authority))
    assert failed(failures) == {"csv.report_signature"}
    assert any("sig_usage" in f for f in failures)


def test_a_cek_from_another_chip_breaks_the_chain(authority: SimulatedAuthority, tmp_path: Path) -> None:
    other = SimulatedHygon.open(SimulatedAuthority.open(tmp_path / "other"))
    report, _ = simulate_csv_report(authority, report_data=REPORT_DATA)
    mine = SimulatedHygon.open(authority)
    _, failures = verify_csv_device(report, armor((mine.hsk, other.cek)), options(authority))
    assert failed(failures) == {"csv.chain"}
    assert any("CEK" in f for f in failures)


def test_without_a_hygon_anchor_nothing_verifies(authority: SimulatedAuthority) -> None:
    report, certificates = simulate_csv_report(authority, report_data=REPORT_DATA)
    _, failures = verify_csv_device(report, certificates, options(authority, anchors=()))
    assert failed(failures) == {"csv.chain"} and "no 'hygon' trust anchor" in failures[0]


def test_simulated_evidence_never_verifies_under_the_real_roots(authority: SimulatedAuthority) -> None:
    evidence = simulate_composite(authority, "csv", report_data=REPORT_DATA)
    found = VendorVerifier().check(evidence, default_options(now=NOW, collateral=NoCollateral()))
    assert not found.ok and not found.cpu.simulated and found.cpu.anchor == ""


def test_the_simulated_verifier_verifies_csv_and_needs_its_anchor(authority: SimulatedAuthority) -> None:
    evidence = simulate_composite(authority, "csv", report_data=REPORT_DATA)
    opts = simulation_options(authority, now=NOW)
    found = opts.verifier.check(evidence, opts)  # type: ignore[union-attr]
    assert found.ok and found.simulated
    without = opts.replace(anchors=tuple(a for a in opts.anchors if a.vendor != "hygon"))
    found = opts.verifier.check(evidence, without)  # type: ignore[union-attr]
    assert "csv.chain" in failed(list(found.failures))


# -- the simulator ---------------------------------------------------------------------------------------------


def test_simulated_keys_live_beside_the_authority_and_say_simulated(authority: SimulatedAuthority) -> None:
    folder = Path(authority.key_dir) / FOLDER
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in folder.iterdir())
    hygon = SimulatedHygon.open(authority)
    assert hygon is SimulatedHygon.open(authority)
    for cert in (hygon.hrk, hygon.hsk, hygon.cek, hygon.pek):
        assert b"SIMULATED" in cert.distinguishing_id
    assert hygon.serial.startswith("SIMULATED-")
    anchor = hygon.anchor()
    assert anchor.simulated and anchor.name == ANCHOR_NAME and "SIMULATED" in anchor.name
    assert str(hygon.keys["pek"]) not in repr(hygon) and f"{hygon.keys['pek']:x}" not in repr(hygon)


def test_simulated_report_says_so(authority: SimulatedAuthority) -> None:
    evidence = simulate_composite(authority, "csv", report_data=REPORT_DATA)
    assert evidence.cpu.report.simulated and is_simulated(evidence)


def test_simulator_refuses_bad_sizes(authority: SimulatedAuthority) -> None:
    with pytest.raises(ValueError, match="64 bytes"):
        simulate_csv_report(authority, report_data=bytes(32))
    with pytest.raises(ValueError, match="measurement"):
        simulate_csv_report(authority, report_data=REPORT_DATA, measurement=bytes(48))
    with pytest.raises(ValueError, match="versions"):
        simulate_csv_report(authority, report_data=REPORT_DATA, version=3)


def test_two_processes_share_one_simulated_chain(tmp_path: Path) -> None:
    a = SimulatedHygon.open(SimulatedAuthority.open(tmp_path / "k"))
    b = SimulatedHygon._load(tmp_path / "k" / FOLDER)
    assert a.hrk == b.hrk and a.serial == b.serial and a.keys == b.keys


# -- appraisal end to end ----------------------------------------------------------------------------------


def _binding() -> Binding:
    return Binding(
        broker_id=hashlib.sha256(b"broker").digest(),
        kem_id=0x0020,
        kdf_id=0x0001,
        aead_id=0x0003,
        public_key=os.urandom(32),
        request_digest=hashlib.sha256(b"request").digest(),
    )


@pytest.mark.parametrize("version", [1, 2])
def test_appraise_end_to_end_with_the_binding(authority: SimulatedAuthority, version: int) -> None:
    nonce, binding = os.urandom(32), _binding()
    evidence = simulate_composite(authority, "csv", nonce=nonce, binding=binding, cpu={"version": version})
    measurement = evidence.cpu.report.measurement.hex()
    policy = Policy(allow_simulation=True, tee_kinds=("csv",), csv={"measurement": [measurement]})
    result = appraise(evidence, policy, nonce=nonce, binding=binding, options=simulation_options(authority))
    assert result.accepted, result.reasons
    assert result.simulated and "SIMULATED" in str(result)
    # the wire form goes through the same pipeline
    result = appraise(evidence.to_bytes(), policy, nonce=nonce, binding=binding, options=simulation_options(authority))
    assert result.accepted, result.reasons
    other = appraise(evidence, policy, nonce=os.urandom(32), binding=binding, options=simulation_options(authority))
    assert not other.accepted and any(v.rule == "require_binding" for v in other.violations)


def test_a_changed_v1_anonce_fails_the_binding(authority: SimulatedAuthority) -> None:
    nonce, binding = os.urandom(32), _binding()
    evidence = simulate_composite(authority, "csv", nonce=nonce, binding=binding, cpu={"version": 1})
    report = evidence.cpu.report
    changed = CompositeEvidence(CpuEvidence(_remask(report, report.tee_info.anonce ^ 0x100), evidence.cpu.certificates))
    policy = Policy(allow_simulation=True, tee_kinds=("csv",), csv={"measurement": [report.measurement.hex()]})
    result = appraise(changed, policy, nonce=nonce, binding=binding, options=simulation_options(authority))
    assert not result.accepted and "require_binding" in [v.rule for v in result.violations]
    assert not result.verification_failures  # the signature holds: only the binding (and pins) notice


def _judge(authority: SimulatedAuthority, policy: Policy, **cpu: Any) -> list[str]:
    evidence = simulate_composite(authority, "csv", report_data=REPORT_DATA, cpu=cpu)
    opts = simulation_options(authority)
    result = appraise(
        evidence, dataclasses.replace(policy, require_binding=False), nonce=None, binding=None, options=opts
    )
    assert not result.verification_failures, result.verification_failures
    return [str(v) for v in result.violations]


def test_the_csv_table_rules(authority: SimulatedAuthority) -> None:
    base = {"allow_simulation": True, "tee_kinds": ("csv",)}
    assert _judge(authority, Policy(**base, csv={"measurement": ["00" * 32]}))[0].startswith(
        "cpu: policy.csv.measurement: evidence csv.measure is"
    )
    assert _judge(authority, Policy(**base, csv={"vm_id": ["11" * 16]}), vm_id=b"\x11" * 16) == []
    assert "policy.csv.vm_id" in _judge(authority, Policy(**base, csv={"vm_id": ["11" * 16]}))[0]
    assert (
        "policy.csv.user_pubkey_digest" in _judge(authority, Policy(**base, csv={"user_pubkey_digest": ["22" * 32]}))[0]
    )
    assert "policy.csv.vm_version" in _judge(authority, Policy(**base, csv={"vm_version": ["33" * 16]}))[0]
    rtmr = _judge(authority, Policy(**base, csv={"rtmr1": ["44" * 32]}), version=1)
    assert "absent" in rtmr[0] and "policy.csv.rtmr1" in rtmr[0]
    assert "policy.csv.rtmr4" in _judge(authority, Policy(**base, csv={"rtmr4": ["44" * 32]}))[0]
    assert _judge(authority, Policy(**base, csv={"min_firmware": "1.4"})) == []
    assert "policy.csv.min_firmware" in _judge(authority, Policy(**base, csv={"min_firmware": "1.10"}))[0]
    assert _judge(authority, Policy(**base, csv={"min_build": 2024})) == []
    assert "policy.csv.min_build" in _judge(authority, Policy(**base, csv={"min_build": 2025}))[0]
    assert "absent" in _judge(authority, Policy(**base, csv={"min_build": 1}), version=1)[0]
    assert _judge(authority, Policy(**base, csv={"require_es": True, "require_csv3": True})) == []
    noks = _judge(authority, Policy(**base, csv={"require_noks": True, "require_nosend": True}))
    assert len(noks) == 2 and "csv.policy.noks" in noks[0] and "csv.policy.nosend" in noks[1]


def test_debug_follows_the_global_rule(authority: SimulatedAuthority) -> None:
    base = {"allow_simulation": True, "tee_kinds": ("csv",)}
    debug = _judge(authority, Policy(**base), debug=True)
    assert debug == ["cpu: policy.allow_debug: evidence csv.debug is true, policy expects false"]
    assert _judge(authority, Policy(**base, allow_debug=True), debug=True) == []
    assert tee("csv").debug(simulate_csv_report(authority, report_data=REPORT_DATA, debug=True)[0])


def test_pinned_measurements_need_the_csv_table(authority: SimulatedAuthority) -> None:
    evidence = simulate_composite(authority, "csv", report_data=REPORT_DATA)
    opts = simulation_options(authority)
    real_policy = Policy(tee_kinds=("csv",), require_binding=False)
    result = appraise(evidence, real_policy, nonce=None, binding=None, options=opts)
    assert any(v.rule == "measurements" and "csv table" in str(v) for v in result.violations)
    assert not Policy(tee_kinds=("csv",), csv={"vm_id": ["00" * 16]}).pins_cpu("csv")
    assert Policy(tee_kinds=("csv",), csv={"measurement": ["00" * 32]}).pins_cpu("csv")


def test_the_csv_table_is_validated() -> None:
    with pytest.raises(ValueError, match=r"policy.csv: unknown field\(s\) mesurement; valid fields: measurement"):
        Policy(csv={"mesurement": ["00" * 32]})
    with pytest.raises(ValueError, match=r"policy\.csv\.measurement"):
        Policy(csv={"measurement": ["00" * 31]})
    with pytest.raises(ValueError, match=r"policy\.csv\.measurement"):
        Policy(csv={"measurement": "00" * 32})
    with pytest.raises(ValueError, match=r"policy\.csv\.min_firmware"):
        Policy(csv={"min_firmware": "1"})
    with pytest.raises(ValueError, match=r"policy\.csv\.min_build"):
        Policy(csv={"min_build": True})
    with pytest.raises(ValueError, match=r"policy\.csv\.require_es"):
        Policy(csv={"require_es": "yes"})
    policy = Policy(csv={"measurement": ["AB" * 32, "ab" * 32], "min_firmware": "01.04"})
    assert policy.csv == {"measurement": ["ab" * 32], "min_firmware": "1.4"}


def test_the_csv_table_round_trips_through_a_policy_file(tmp_path: Path) -> None:
    policy = Policy(
        name="csv",
        tee_kinds=("csv",),
        csv={"measurement": ["ab" * 32], "min_firmware": "1.4", "min_build": 7, "require_es": True},
    )
    path = tmp_path / "p.toml"
    path.write_text(policy.to_toml())
    assert "[csv]" in path.read_text()
    assert Policy.from_file(path) == policy
    assert Policy.from_dict(policy.to_dict()).policy_id == policy.policy_id


def test_reference_values_pin_the_evidence(authority: SimulatedAuthority, tmp_path: Path) -> None:
    v1 = simulate_composite(authority, "csv", report_data=REPORT_DATA, cpu={"version": 1, "vm_id": b"\x01" * 16})
    v2 = simulate_composite(authority, "csv", report_data=REPORT_DATA)
    policy = reference_policy([v1, v2], name="ref", allow_simulation=True, require_binding=False)
    assert policy.tee_kinds == ("csv",)
    assert policy.csv["measurement"] == [v2.cpu.report.measurement.hex()]
    assert policy.csv["vm_id"] == ["01" * 16, "00" * 16]
    assert "rtmr1" in policy.csv and policy.pins_cpu("csv")
    for evidence in (v2,):
        result = appraise(evidence, policy, nonce=None, binding=None, options=simulation_options(authority))
        assert result.accepted, result.reasons
    # v1 has no RTMRs: a policy pinning v2's refuses it, which is what pinning RTMRs means
    refused = appraise(v1, policy, nonce=None, binding=None, options=simulation_options(authority))
    assert any("rtmr1" in str(v) for v in refused.violations)


def test_cchet_policy_from_evidence_writes_the_csv_table(authority: SimulatedAuthority, tmp_path: Path) -> None:
    from cchet.cli import main

    evidence = simulate_composite(authority, "csv", report_data=REPORT_DATA)
    (tmp_path / "ev.json").write_bytes(evidence.to_bytes())
    out = tmp_path / "policy.toml"
    assert main(["policy", "from-evidence", str(tmp_path / "ev.json"), "-o", str(out), "--allow-simulation"]) == 0
    policy = Policy.from_file(out)
    assert policy.tee_kinds == ("csv",) and policy.csv["measurement"] == [evidence.cpu.report.measurement.hex()]


def test_claims(authority: SimulatedAuthority) -> None:
    from cchet.attest.claims import cpu_claims

    claims = cpu_claims(simulate_composite(authority, "csv", report_data=REPORT_DATA, cpu={"version": 1}))
    assert claims["kind"] == "csv" and claims["version"] == 1 and claims["report_data"] == REPORT_DATA.hex()
    assert claims["policy"]["nodbg"] and claims["policy"]["es"] and claims["policy"]["csv3"]
    assert claims["serial_number"].startswith("SIMULATED-") and claims["firmware"] == "1.4" and "anonce" in claims
    v2 = cpu_claims(simulate_composite(authority, "csv", report_data=REPORT_DATA))
    assert v2["rtmr0"] == v2["measurement"] and v2["build"] == 2024


def test_placement_names_the_csv_kind() -> None:
    task = cchet.remote(tee="csv")(lambda x: x)
    assert task.options(tee="csv") is not task
