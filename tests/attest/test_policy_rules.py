"""One test per policy rule: evidence that breaks exactly that rule is rejected naming the rule's policy
field (and only it), and the same evidence is accepted once the rule is relaxed."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import pytest

from cchet.attest import Policy, appraise
from cchet.attest.binding import Binding
from cchet.attest.evidence import CompositeEvidence
from cchet.attest.formats.dcap import Quote, SgxReportBody, TdReportBody
from cchet.attest.formats.snp import SnpReport
from cchet.attest.simulate import SimulatedAuthority, simulate_composite, simulation_options
from cchet.attest.verify import VerifyOptions
from cchet.attest.verify.verified import Verification, VerifiedDevice
from tests.attest.conftest import NOW

NONCE = hashlib.sha256(b"nonce").digest()
BINDING = Binding(hashlib.sha256(b"broker").digest(), 0x0020, 0x0001, 0x0003, b"k" * 32, bytes(32))


def _evidence(authority: SimulatedAuthority, kind: str, gpus: int = 0, **cpu: Any) -> CompositeEvidence:
    return simulate_composite(authority, kind, nonce=NONCE, binding=BINDING, gpus=gpus, cpu=cpu)


def _pins(ev: CompositeEvidence) -> dict[str, Any]:
    report = ev.cpu.report
    if isinstance(report, Quote) and isinstance(report.body, TdReportBody):
        return {"mrtd": [report.body.mr_td.hex()]}
    if isinstance(report, Quote) and isinstance(report.body, SgxReportBody):
        return {"mrenclave": [report.body.mr_enclave.hex()]}
    assert isinstance(report, SnpReport)
    return {"snp_measurement": [report.measurement.hex()]}


def _check(
    ev: CompositeEvidence,
    strict: dict[str, Any],
    relaxed: dict[str, Any],
    rule: str,
    options: VerifyOptions,
    **kw: Any,
) -> None:
    base = {"allow_simulation": True, **_pins(ev)}
    bad = appraise(ev, Policy(**{**base, **strict}), nonce=NONCE, binding=BINDING, options=options, **kw)
    assert not bad.accepted
    assert bad.verification_failures == ()
    assert {v.rule for v in bad.violations} == {rule}, bad.reasons
    assert bad.violations[0].evidence_field
    with pytest.raises(Exception, match=f"policy.{rule}"):
        bad.raise_for_status()
    good = appraise(ev, Policy(**{**base, **relaxed}), nonce=NONCE, binding=BINDING, options=options, **kw)
    assert good.accepted, good.reasons


CASES: list[tuple[str, str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    # (rule, kind, evidence fields, strict policy, relaxed policy)
    ("tee_kinds", "tdx", {}, {"tee_kinds": ["snp"]}, {"tee_kinds": ["tdx"]}),
    ("allow_simulation", "tdx", {}, {"allow_simulation": False}, {}),
    ("mrtd", "tdx", {"mr_td": b"\x01" * 48}, {"mrtd": ["02" * 48]}, {"mrtd": ["02" * 48, "01" * 48]}),
    ("rtmr0", "tdx", {"rtmrs": [b"\x00" * 48] * 4}, {"rtmr0": ["ee" * 48]}, {"rtmr0": ["00" * 48]}),
    ("rtmr1", "tdx", {"rtmrs": [b"\x00" * 48] * 4}, {"rtmr1": ["ee" * 48]}, {"rtmr1": ["00" * 48]}),
    ("rtmr2", "tdx", {"rtmrs": [b"\x00" * 48] * 4}, {"rtmr2": ["ee" * 48]}, {"rtmr2": ["00" * 48]}),
    ("rtmr3", "tdx", {"rtmrs": [b"\x00" * 48] * 4}, {"rtmr3": ["ee" * 48]}, {"rtmr3": ["00" * 48]}),
    (
        "mrconfigid",
        "tdx",
        {"mr_config_id": b"\x05" * 48},
        {"mrconfigid": ["06" * 48]},
        {"mrconfigid": ["05" * 48]},
    ),
    ("allow_debug", "tdx", {"debug": True}, {}, {"allow_debug": True}),
    ("allow_debug", "sgx", {"debug": True}, {}, {"allow_debug": True}),
    ("allow_debug", "snp", {"debug": True}, {}, {"allow_debug": True}),
    (
        "mrenclave",
        "sgx",
        {"mr_enclave": b"\x07" * 32},
        {"mrenclave": ["08" * 32]},
        {"mrenclave": ["07" * 32]},
    ),
    ("mrsigner", "sgx", {"mr_signer": b"\x07" * 32}, {"mrsigner": ["08" * 32]}, {"mrsigner": ["07" * 32]}),
    ("isv_prod_id", "sgx", {"isv_prod_id": 4}, {"isv_prod_id": 5}, {"isv_prod_id": 4}),
    ("min_isv_svn", "sgx", {"isv_svn": 2}, {"min_isv_svn": 3}, {"min_isv_svn": 2}),
    (
        "snp_measurement",
        "snp",
        {"measurement": b"\x03" * 48},
        {"snp_measurement": ["04" * 48]},
        {"snp_measurement": ["03" * 48]},
    ),
    (
        "snp_host_data",
        "snp",
        {"host_data": b"\x03" * 32},
        {"snp_host_data": ["04" * 32]},
        {"snp_host_data": ["03" * 32]},
    ),
    ("snp_allow_smt", "snp", {}, {"snp_allow_smt": False}, {"snp_allow_smt": True}),
    (
        "snp_allow_migration_agent",
        "snp",
        {"policy": (1 << 17) | (1 << 18)},
        {},
        {"snp_allow_migration_agent": True},
    ),
    (
        "snp_min_tcb",
        "snp",
        {"tcb": (9, 0, 21, 84)},
        {"snp_min_tcb": [9, 0, 22, 0]},
        {"snp_min_tcb": [9, 0, 21, 84]},
    ),
    ("snp_vmpl", "snp", {"vmpl": 1}, {}, {"snp_vmpl": 1}),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_cpu_rule(
    authority: SimulatedAuthority, case: tuple[str, str, dict[str, Any], dict[str, Any], dict[str, Any]]
) -> None:
    rule, kind, fields, strict, relaxed = case
    _check(
        _evidence(authority, kind, **fields), strict, relaxed, rule, simulation_options(authority, now=NOW)
    )


def test_min_tcb_status(authority: SimulatedAuthority) -> None:
    opts = simulation_options(authority, now=NOW, tcb_status="SWHardeningNeeded")
    _check(_evidence(authority, "tdx"), {}, {"min_tcb_status": "SWHardeningNeeded"}, "min_tcb_status", opts)


def test_accepted_advisories(authority: SimulatedAuthority) -> None:
    opts = simulation_options(authority, now=NOW, advisory_ids=["INTEL-SA-00837"])
    relaxed = {"accepted_advisories": ["INTEL-SA-00837"]}
    _check(_evidence(authority, "sgx"), {}, relaxed, "accepted_advisories", opts)


def test_gpu_required(authority: SimulatedAuthority) -> None:
    opts = simulation_options(authority, now=NOW)
    _check(_evidence(authority, "tdx"), {"gpu": "required"}, {"gpu": "optional"}, "gpu", opts)


def test_gpu_forbidden(authority: SimulatedAuthority) -> None:
    opts = simulation_options(authority, now=NOW)
    _check(_evidence(authority, "tdx", gpus=1), {"gpu": "forbidden"}, {"gpu": "required"}, "gpu", opts)


def test_gpu_rim_ids(authority: SimulatedAuthority) -> None:
    ev = _evidence(authority, "snp", gpus=2)
    strict = {"gpu_rim_ids": ["NV_GPU_DRIVER_GH100_535.86.09"]}
    relaxed = {"gpu_rim_ids": ["NV_GPU_DRIVER_GH100_550.90.07", "NV_GPU_VBIOS_1010_0200_882_96009F0001"]}
    _check(ev, strict, relaxed, "gpu_rim_ids", simulation_options(authority, now=NOW))


def test_min_driver_version(authority: SimulatedAuthority) -> None:
    ev = _evidence(authority, "tdx", gpus=1)
    opts = simulation_options(authority, now=NOW)
    _check(
        ev,
        {"min_driver_version": "550.90.8"},
        {"min_driver_version": "550.90.07"},
        "min_driver_version",
        opts,
    )


def test_min_vbios_version(authority: SimulatedAuthority) -> None:
    ev = _evidence(authority, "tdx", gpus=1)
    opts = simulation_options(authority, now=NOW)
    strict = {"min_vbios_version": "96.00.A0.00.00"}
    _check(ev, strict, {"min_vbios_version": "96.00.9F.00.01"}, "min_vbios_version", opts)


def test_require_binding(authority: SimulatedAuthority) -> None:
    other = Binding(BINDING.broker_id, 0x0020, 0x0001, 0x0003, b"x" * 32, bytes(32))
    ev = simulate_composite(authority, "tdx", nonce=NONCE, binding=other)
    _check(ev, {}, {"require_binding": False}, "require_binding", simulation_options(authority, now=NOW))


def test_max_nonce_age(authority: SimulatedAuthority) -> None:
    opts = simulation_options(authority, now=NOW)
    issued = NOW - dt.timedelta(seconds=90)
    ev = _evidence(authority, "tdx")
    _check(ev, {}, {"max_nonce_age_s": 120}, "max_nonce_age_s", opts, nonce_issued_at=issued)


class _NonSimulatedVerifier:
    """Stands in for a real vendor verifier that passed (the real ones arrive with the next issue)."""

    name = "test-non-simulated"

    def check(self, evidence: CompositeEvidence, options: VerifyOptions) -> Verification:
        cpu = VerifiedDevice("cpu", evidence.cpu.kind, False, "test-anchor", "UpToDate")
        gpus = tuple(
            VerifiedDevice(f"gpu{g.index}", "nvidia-gpu", False, "test-anchor", measurements="match")
            for g in evidence.gpus
        )
        return Verification(evidence, cpu, gpus, (), options.now(), self.name)


def test_measurements_must_be_pinned(authority: SimulatedAuthority, caplog: pytest.LogCaptureFixture) -> None:
    ev = _evidence(authority, "tdx")
    opts = simulation_options(authority, now=NOW).replace(verifier=_NonSimulatedVerifier())
    bad = appraise(ev, Policy(), nonce=NONCE, binding=BINDING, options=opts)
    assert [v.rule for v in bad.violations] == ["measurements"] and not bad.simulated
    with caplog.at_level("WARNING", logger="cchet.attest"):
        good = appraise(ev, Policy(measurements="any"), nonce=NONCE, binding=BINDING, options=opts)
    assert good.accepted
    assert any("measurements='any'" in r.getMessage() for r in caplog.records)
    pinned = appraise(ev, Policy(**_pins(ev)), nonce=NONCE, binding=BINDING, options=opts)
    assert pinned.accepted


def test_simulation_without_pins_is_allowed_only_with_allow_simulation(authority: SimulatedAuthority) -> None:
    ev = _evidence(authority, "tdx")
    opts = simulation_options(authority, now=NOW)
    assert appraise(ev, Policy(allow_simulation=True), nonce=NONCE, binding=BINDING, options=opts).accepted
    bad = appraise(ev, Policy(), nonce=NONCE, binding=BINDING, options=opts)
    assert sorted(v.rule for v in bad.violations) == ["allow_simulation", "measurements"]


def test_every_violation_is_listed(authority: SimulatedAuthority) -> None:
    ev = _evidence(authority, "snp", gpus=1, debug=True, vmpl=2)
    policy = Policy(
        snp_measurement=["00" * 48], snp_allow_smt=False, gpu="forbidden", min_driver_version="999"
    )
    result = appraise(
        ev, policy, nonce=bytes(32), binding=BINDING, options=simulation_options(authority, now=NOW)
    )
    rules = sorted(v.rule for v in result.violations)
    assert rules == sorted(
        [
            "allow_simulation",
            "snp_measurement",
            "allow_debug",
            "snp_allow_smt",
            "snp_vmpl",
            "snp_min_tcb",  # no TCB floor set: refused like unpinned measurements
            "gpu",
            "min_driver_version",
            "require_binding",
            "require_binding",
        ]
    )
    assert result.simulated and "SIMULATED" in str(result)


def test_require_binding_gpu_nonce(authority: SimulatedAuthority) -> None:
    """A GPU that answered another nonce is caught even when the CPU report data binds its report."""
    from cchet.attest.binding import compute_report_data
    from cchet.attest.evidence import CpuEvidence, GpuEvidence
    from cchet.attest.simulate import simulate_spdm_report, simulate_tdx_quote

    report, chain = simulate_spdm_report(authority, nonce=hashlib.sha256(b"another nonce").digest())
    gpu = GpuEvidence(0, report, chain)
    rd = compute_report_data(BINDING, NONCE, [(0, report.request.to_bytes(), report.response.to_bytes())])
    ev = CompositeEvidence(CpuEvidence(simulate_tdx_quote(authority, report_data=rd)), (gpu,))
    opts = simulation_options(authority, now=NOW)
    bad = appraise(ev, Policy(allow_simulation=True), nonce=NONCE, binding=BINDING, options=opts)
    assert [(v.rule, v.device, v.evidence_field) for v in bad.violations] == [
        ("require_binding", "gpu0", "spdm.request.nonce")
    ]
    relaxed = appraise(
        ev, Policy(allow_simulation=True, require_binding=False), nonce=NONCE, binding=BINDING, options=opts
    )
    assert relaxed.accepted
