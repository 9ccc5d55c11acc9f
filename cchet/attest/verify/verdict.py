"""What ``cchet verify`` decides about one piece of evidence: verification, then the default policy (or a
policy file), as data.

The default policy: no debug; TCB status UpToDate (any other status is a violation naming it and its
advisory ids); CPU measurements are reported as "not pinned" (the CLI judges evidence; key release refuses
unpinned policies); GPU measurements must match signed RIMs ("measurements not compared" is a violation).
``verify_only`` skips the policy. A policy file is applied by :func:`cchet.attest.appraise` without the
report-data binding (there is no broker transcript on the command line); it needs CPU evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from cchet.attest.evidence import CompositeEvidence, CpuEvidence, GpuEvidence
from cchet.attest.formats.dcap import Quote
from cchet.attest.formats.snp import SnpReport
from cchet.attest.formats.spdm import SpdmReport
from cchet.attest.policy import Policy
from cchet.attest.verify.amd import verify_snp_device
from cchet.attest.verify.checks import CHECKS
from cchet.attest.verify.failure import check_of
from cchet.attest.verify.intel import verify_quote_device
from cchet.attest.verify.nvidia import verify_gpu_device
from cchet.attest.verify.options import VerifyOptions
from cchet.attest.verify.verified import VerifiedDevice

__all__ = ["Verdict", "judge"]


@dataclass(frozen=True)
class Verdict:
    """``ok`` when nothing failed and nothing was violated. ``failures`` are verification failures (strings,
    tagged with their check where the verifier knows it); ``violations`` policy violations; ``notes`` what
    was not judged."""

    kind: str
    devices: tuple[VerifiedDevice, ...]
    claims: dict[str, Any]
    failures: tuple[str, ...]
    violations: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.failures and not self.violations

    def reason(self) -> str:
        """One line: why it failed (the first failure or violation), or that it passed."""
        if self.failures:
            return f"verification failed: {self.failures[0]}"
        if self.violations:
            return f"policy violated: {self.violations[0]}"
        return f"{self.kind} evidence verifies" + ("" if self.notes else " and the policy passes")

    def to_json(self) -> dict[str, Any]:
        def failure(f: str) -> dict[str, Any]:
            check = check_of(f)
            error = CHECKS[check].error.__name__ if check else "VerificationError"
            return {"check": check, "error": error, "message": str(f)}

        return {
            "ok": self.ok,
            "kind": self.kind,
            "reason": self.reason(),
            "claims": self.claims,
            "devices": [
                {
                    "device": d.device,
                    "kind": d.kind,
                    "root_sha256": d.anchor,
                    "simulated": d.simulated,
                    "tcb_status": d.tcb_status,
                    "advisory_ids": list(d.advisory_ids),
                    "measurements": d.measurements,
                    "rim_versions": list(d.rim_versions),
                }
                for d in self.devices
            ],
            "failures": [failure(f) for f in self.failures],
            "violations": list(self.violations),
            "notes": list(self.notes),
        }


def _default_policy(cpu: CpuEvidence | None, devices: tuple[VerifiedDevice, ...]) -> tuple[list[str], list[str]]:
    violations: list[str] = []
    notes: list[str] = []
    if cpu is not None:
        report = cpu.report
        if report.debug if isinstance(report, SnpReport) else report.body.debug:
            violations.append("cpu: debug is enabled (the default policy allows no debug)")
        notes.append("cpu: measurements not pinned (pass --policy to pin them)")
    for d in devices:
        if d.kind in ("tdx", "sgx") and d.tcb_status is not None and d.tcb_status != "UpToDate":
            advisories = ", ".join(d.advisory_ids) or "none"
            violations.append(
                f"{d.device}: TCB status {d.tcb_status} (advisories: {advisories}), policy wants UpToDate"
            )
        if d.kind == "nvidia-gpu" and d.measurements != "match":
            violations.append(f"{d.device}: measurements {d.measurements} against signed RIMs")
    return violations, notes


def judge(
    evidence: CompositeEvidence | Quote | SnpReport | SpdmReport,
    options: VerifyOptions,
    *,
    certificates: bytes = b"",
    nonce: bytes | None = None,
    policy: Policy | None = None,
    verify_only: bool = False,
) -> Verdict:
    """Verifies ``evidence`` (certificates for a lone SNP or SPDM report come in ``certificates``) and applies
    the default policy, ``policy``, or nothing (``verify_only``). ``nonce`` is the expected CPU report data
    (64 bytes) or, for a lone GPU report, the SPDM nonce (32 bytes). Raises ``ValueError`` when ``policy`` is
    given for a lone GPU report, :class:`~cchet.errors.EvidenceFormatError` when certificates do not decode."""
    from cchet.attest.claims import cpu_claims, gpu_claims

    if isinstance(evidence, Quote | SnpReport):
        evidence = CompositeEvidence(CpuEvidence(evidence, certificates))
    failures: list[str] = []
    devices: list[VerifiedDevice] = []
    claims: dict[str, Any] = {}
    cpu: CpuEvidence | None = None
    if isinstance(evidence, SpdmReport):
        if policy is not None:
            raise ValueError("--policy needs CPU evidence; a lone GPU report takes the default policy")
        gpu, fs = verify_gpu_device(evidence, certificates, options, expected_nonce=nonce)
        devices.append(gpu)
        failures.extend(fs)
        claims["gpu0"] = gpu_claims(GpuEvidence(0, evidence, certificates))
        kind = "nvidia"
    else:
        cpu = evidence.cpu
        kind = cpu.kind
        report = cpu.report
        if isinstance(report, Quote):
            dev, fs = verify_quote_device(report, options, event_log=cpu.event_log, expected_report_data=nonce)
        else:
            dev, fs = verify_snp_device(report, cpu.certificates, options, expected_report_data=nonce)
        devices.append(dev)
        failures.extend(fs)
        claims["cpu"] = cpu_claims(evidence)
        for g in evidence.gpus:
            gpu, fs = verify_gpu_device(g.report, g.certificates, options, index=g.index)
            devices.append(gpu)
            failures.extend(fs)
            claims[f"gpu{g.index}"] = gpu_claims(g)
    violations: list[str] = []
    notes: list[str] = []
    if verify_only:
        notes.append("policy skipped (--verify-only)")
    elif policy is not None and isinstance(evidence, CompositeEvidence):
        from cchet.attest.appraise import appraise

        result = appraise(
            evidence,
            replace(policy, require_binding=False),
            nonce=None,
            binding=None,
            options=options.replace(verifier=_Fixed(devices, failures)),
        )
        violations.extend(str(v) for v in result.violations)
        notes.append("report-data binding not checked (no broker transcript on the command line)")
    else:
        v, n = _default_policy(cpu, tuple(devices))
        violations.extend(v)
        notes.extend(n)
    return Verdict(kind, tuple(devices), claims, tuple(failures), tuple(violations), tuple(notes))


class _Fixed:
    """A verifier that replays the verification already done, so the policy file is applied once to it."""

    name = "cchet-vendor-verifier"

    def __init__(self, devices: list[VerifiedDevice], failures: list[str]) -> None:
        self._devices = devices
        self._failures = failures

    def verify(self, evidence: CompositeEvidence, options: VerifyOptions) -> Any:
        from cchet.attest.verify.failure import raise_failures
        from cchet.attest.verify.verified import VerifiedEvidence

        if self._failures:
            raise_failures(self._failures)
        return VerifiedEvidence(evidence, self._devices[0], tuple(self._devices[1:]), options.now(), self.name)
