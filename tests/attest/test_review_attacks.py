"""The outside review's attestation findings, replayed: each test is the attack that got a key (or a wrong
verdict) before, and now must not.

- A GPU whose 64 measurements were all replaced was accepted whenever its RIMs were missing ("not
  compared"); now driver and VBIOS RIMs must match unless the policy says ``gpu_measurements="unchecked"``,
  and the refusal names the missing RIM.
- A GPU in CC devtools mode (its memory unprotected) was accepted; now only ``gpu_allow_devtools`` lets it
  through, with a warning.
- An SEV-SNP report at TCB (0,0,0,0) passed any policy without ``snp_min_tcb``; now a policy with no SNP TCB
  floor refuses it the way unpinned measurements are refused, and ``policy from-evidence`` pins the floor.
- ``cchet verify`` replayed failures through a second verifier; now one verification feeds every policy.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from cchet.attest import Policy, appraise
from cchet.attest.appraise import UNPINNED, evaluate, verify_evidence
from cchet.attest.binding import Binding
from cchet.attest.evidence import CompositeEvidence, decode_composite
from cchet.attest.formats.snp import SnpReport
from cchet.attest.reference import reference_policy
from cchet.attest.simulate import SimulatedAuthority, simulate_composite, simulation_options
from cchet.attest.verify import VerifyOptions
from cchet.attest.verify.verdict import judge
from cchet.attest.verify.verified import Verification, VerifiedDevice
from tests.attest.conftest import NOW

NONCE = hashlib.sha256(b"review nonce").digest()
BINDING = Binding(hashlib.sha256(b"broker").digest(), 0x0020, 0x0001, 0x0003, b"k" * 32, bytes(32))
REPLACED = {i: bytes([0xEE]) * 48 for i in range(1, 65)}  # every driver and VBIOS measurement


def _evidence(authority: SimulatedAuthority, kind: str = "tdx", **kw: Any) -> CompositeEvidence:
    return simulate_composite(authority, kind, nonce=NONCE, binding=BINDING, **kw)


def _pinned(ev: CompositeEvidence, **fields: Any) -> Policy:
    """A production-shaped policy: the evidence's measurements pinned, simulation allowed (the simulator is
    the only TEE here), the GPU required."""
    return reference_policy([ev], **{"allow_simulation": True, **fields})


def _appraise(ev: CompositeEvidence, policy: Policy, options: VerifyOptions) -> Any:
    return appraise(ev, policy, nonce=NONCE, binding=BINDING, options=options)


class _CountingVerifier:
    """A real-shaped (not simulated) verifier that passes everything and counts its calls."""

    name = "test-counting"

    def __init__(self, tcb_status: str = "UpToDate") -> None:
        self.calls = 0
        self.tcb_status = tcb_status

    def check(self, evidence: CompositeEvidence, options: VerifyOptions) -> Verification:
        self.calls += 1
        cpu = VerifiedDevice("cpu", evidence.cpu.kind, False, "test-anchor", self.tcb_status)
        gpus = tuple(
            VerifiedDevice(f"gpu{g.index}", "nvidia-gpu", False, "test-anchor", measurements="match")
            for g in evidence.gpus
        )
        return Verification(evidence, cpu, gpus, (), options.now(), self.name)


# -- item 2: GPU measurements against NVIDIA's RIMs, CC mode ------------------------------------------------


def test_replaced_gpu_measurements_with_rims_at_hand_fail_verification(authority: SimulatedAuthority) -> None:
    ev = _evidence(authority, gpus=1, gpu={"measurements": REPLACED})
    result = _appraise(ev, _pinned(ev), simulation_options(authority, now=NOW))
    assert not result.accepted
    assert any("differs from RIM" in f for f in result.verification_failures), result.reasons


def test_replaced_gpu_measurements_without_rims_are_refused_naming_the_rims(authority: SimulatedAuthority) -> None:
    """The attack: the RIMs are withheld (not cached, no fetcher), so nothing is compared -- that used to
    release the key."""
    ev = _evidence(authority, gpus=1, gpu={"measurements": REPLACED})
    no_rims = simulation_options(authority, now=NOW).replace(rims=())
    result = _appraise(ev, _pinned(ev), no_rims)
    assert not result.accepted and result.verification_failures == ()
    [violation] = result.violations
    assert violation.rule == "gpu_measurements" and violation.device == "gpu0"
    assert "driver RIM NV_GPU_DRIVER_" in str(violation.actual) and "VBIOS RIM NV_GPU_VBIOS_" in str(violation.actual)
    assert "cchet collateral fetch" in str(violation.actual)
    assert result.device("gpu0").claims["rim_measurements"] == "not compared"


def test_unchecked_gpu_measurements_is_an_explicit_opt_out_with_a_warning(authority: SimulatedAuthority) -> None:
    ev = _evidence(authority, gpus=1)
    no_rims = simulation_options(authority, now=NOW).replace(rims=())
    result = _appraise(ev, _pinned(ev, gpu_measurements="unchecked"), no_rims)
    assert result.accepted, result.reasons
    assert any("gpu0: measurements not compared" in w for w in result.warnings)
    assert "cchet.warnings" in result.to_json()
    with pytest.raises(ValueError, match="gpu_measurements"):
        Policy(gpu_measurements="sometimes")


def test_matching_gpu_measurements_release(authority: SimulatedAuthority) -> None:
    ev = _evidence(authority, gpus=1)
    result = _appraise(ev, _pinned(ev), simulation_options(authority, now=NOW))
    assert result.accepted and result.warnings == (), result.reasons
    assert result.device("gpu0").claims["rim_measurements"] == "match"


def test_gpu_in_devtools_mode_is_refused_unless_allowed(authority: SimulatedAuthority) -> None:
    ev = _evidence(authority, gpus=1, gpu={"cc_mode": "devtools"})
    options = simulation_options(authority, now=NOW)
    refused = _appraise(ev, _pinned(ev), options)
    assert [(v.rule, v.actual) for v in refused.violations] == [("gpu_allow_devtools", "devtools")]
    allowed = _appraise(ev, _pinned(ev, gpu_allow_devtools=True), options)
    assert allowed.accepted and any("devtools" in w for w in allowed.warnings)
    # the CC mode travels with the evidence, so a broker sees what the worker's attester saw
    assert decode_composite(ev.to_bytes()).gpus[0].cc_mode == "devtools"


# -- item 4: an SEV-SNP TCB floor ----------------------------------------------------------------------------


def test_snp_without_a_tcb_floor_is_refused_for_key_release(authority: SimulatedAuthority) -> None:
    """A report at TCB (0,0,0,0) passed a policy that pinned the measurement but set no floor."""
    ev = _evidence(authority, "snp", cpu={"tcb": (0, 0, 0, 0)})
    assert isinstance(ev.cpu.report, SnpReport)
    measurement = ev.cpu.report.measurement.hex()
    options = simulation_options(authority, now=NOW).replace(verifier=_CountingVerifier())
    no_floor = _appraise(ev, Policy(snp_measurement=[measurement]), options)
    assert [(v.rule, v.actual) for v in no_floor.violations] == [("snp_min_tcb", UNPINNED)]
    floor = _appraise(ev, Policy(snp_measurement=[measurement], snp_min_tcb=[3, 0, 8, 115]), options)
    assert [v.rule for v in floor.violations] == ["snp_min_tcb"] and floor.violations[0].actual == "[0, 0, 0, 0]"
    at_floor = _appraise(ev, Policy(snp_measurement=[measurement], snp_min_tcb=[0, 0, 0, 0]), options)
    assert at_floor.accepted, at_floor.reasons


def test_policy_from_evidence_pins_the_snp_tcb_floor(authority: SimulatedAuthority) -> None:
    older = _evidence(authority, "snp", cpu={"tcb": (3, 0, 9, 200)})
    newer = _evidence(authority, "snp", cpu={"tcb": (4, 0, 8, 210)})
    policy = reference_policy([older, newer])
    assert policy.snp_min_tcb == (3, 0, 8, 200)  # the lowest of each component: both machines pass
    options = simulation_options(authority, now=NOW).replace(verifier=_CountingVerifier())
    for ev in (older, newer):
        assert _appraise(ev, policy, options).accepted
    stale = _evidence(authority, "snp", cpu={"tcb": (3, 0, 7, 200)})
    assert [v.rule for v in _appraise(stale, policy, options).violations] == ["snp_min_tcb"]


# -- item 6: one pipeline ------------------------------------------------------------------------------------


def test_one_verification_serves_every_policy(authority: SimulatedAuthority) -> None:
    ev = _evidence(authority, gpus=1)
    verifier = _CountingVerifier()
    verified = verify_evidence(ev, simulation_options(authority, now=NOW).replace(verifier=verifier))
    strict = evaluate(verified, _pinned(ev, allow_simulation=False), nonce=NONCE, binding=BINDING)
    loose = evaluate(verified, Policy(measurements="any"), nonce=NONCE, binding=BINDING)
    assert strict.accepted and loose.accepted and verifier.calls == 1
    assert loose.warnings == ("cpu: no tdx measurement checked (policy measurements='any')",)


def test_cchet_verify_judges_with_one_verification(authority: SimulatedAuthority) -> None:
    ev = _evidence(authority, gpus=1)
    verifier = _CountingVerifier(tcb_status="OutOfDate")
    verdict = judge(ev, simulation_options(authority, now=NOW).replace(verifier=verifier))
    assert verifier.calls == 1
    assert verdict.failures == () and len(verdict.violations) == 1
    assert verdict.violations[0].startswith("cpu: policy.min_tcb_status")
    assert "cpu: measurements not pinned (pass --policy to pin them)" in verdict.notes
