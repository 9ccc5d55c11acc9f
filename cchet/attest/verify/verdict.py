"""What ``cchet verify`` decides about one piece of evidence: the attestation pipeline of key release
(:func:`~cchet.attest.appraise.verify_evidence` once, then :func:`~cchet.attest.appraise.evaluate`), as data.

The policy is the one given (``--policy``), or :data:`DEFAULT_POLICY`: no debug, TCB status UpToDate with no
advisory, GPU measurements matching NVIDIA's signed RIMs, not in devtools mode -- and the rules that need
reference values (CPU measurements, an SEV-SNP TCB floor) reported as notes ("not pinned") instead of
violations, since the command line judges evidence rather than releasing keys. No policy applies the
report-data binding (there is no broker transcript on the command line); ``--nonce`` checks the report data
instead. ``verify_only`` skips the policy. A lone GPU report is verified and its measurements judged against
the RIMs; a policy needs CPU evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from cchet.attest.evidence import CompositeEvidence, CpuEvidence, GpuEvidence
from cchet.attest.formats.dcap import Quote
from cchet.attest.formats.snp import SnpReport
from cchet.attest.formats.spdm import SpdmReport
from cchet.attest.policy import Policy
from cchet.attest.tees import ALL
from cchet.attest.verify.checks import CHECKS
from cchet.attest.verify.failure import check_of
from cchet.attest.verify.options import VerifyOptions
from cchet.attest.verify.verified import VerifiedDevice

__all__ = ["DEFAULT_POLICY", "Verdict", "judge"]

DEFAULT_POLICY = Policy(name="cchet-verify-default", require_binding=False, tee_kinds=ALL)
_NOT_PINNED = {
    "measurements": "cpu: measurements not pinned (pass --policy to pin them)",
    "snp_min_tcb": "cpu: no SEV-SNP TCB floor pinned (pass --policy with snp_min_tcb)",
}


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
                    "rims_missing": list(d.rims_missing),
                }
                for d in self.devices
            ],
            "failures": [failure(f) for f in self.failures],
            "violations": list(self.violations),
            "notes": list(self.notes),
        }


def _lone_gpu(
    report: SpdmReport, certificates: bytes, options: VerifyOptions, nonce: bytes | None, verify_only: bool
) -> Verdict:
    from cchet.attest.claims import gpu_claims
    from cchet.attest.verify.nvidia import verify_gpu_device

    gpu, failures = verify_gpu_device(report, certificates, options, expected_nonce=nonce)
    violations: list[str] = []
    notes: list[str] = ["policy skipped (--verify-only)"] if verify_only else []
    if not verify_only and gpu.measurements == "not compared":
        missing = "; ".join(gpu.rims_missing) or "no driver or VBIOS RIM"
        violations.append(f"gpu0: measurements not compared with signed RIMs: {missing}")
    claims = {"gpu0": gpu_claims(GpuEvidence(0, report, certificates))}
    return Verdict("spdm", (gpu,), claims, tuple(failures), tuple(violations), tuple(notes))


def judge(
    evidence: CompositeEvidence | Quote | SnpReport | SpdmReport | Any,
    options: VerifyOptions,
    *,
    certificates: bytes = b"",
    nonce: bytes | None = None,
    policy: Policy | None = None,
    verify_only: bool = False,
) -> Verdict:
    """Verifies ``evidence`` once (certificates for a lone SNP or SPDM report come in ``certificates``) and
    evaluates ``policy``, :data:`DEFAULT_POLICY`, or nothing (``verify_only``) against it. ``nonce`` is the
    expected CPU report data (64 bytes) or, for a lone GPU report, the SPDM nonce (32 bytes). Raises
    ``ValueError`` when ``policy`` is given for a lone GPU report, :class:`~cchet.errors.EvidenceFormatError`
    when certificates do not decode."""
    from cchet.attest.appraise import UNPINNED, evaluate, verify_evidence
    from cchet.attest.claims import cpu_claims, gpu_claims

    if isinstance(evidence, SpdmReport):
        if policy is not None:
            raise ValueError("--policy needs CPU evidence; a lone GPU report takes the default policy")
        return _lone_gpu(evidence, certificates, options, nonce, verify_only)
    if not isinstance(evidence, CompositeEvidence):
        evidence = CompositeEvidence(CpuEvidence(evidence, certificates))  # a quote, an SNP or a family's report
    verified = verify_evidence(evidence, options.replace(expected_report_data=nonce))
    claims: dict[str, Any] = {"cpu": cpu_claims(evidence), **{f"gpu{g.index}": gpu_claims(g) for g in evidence.gpus}}
    violations: list[str] = []
    notes: list[str] = []
    if verify_only:
        notes.append("policy skipped (--verify-only)")
    else:
        result = evaluate(verified, replace(policy or DEFAULT_POLICY, require_binding=False), nonce=None, binding=None)
        for v in result.violations:
            if policy is None and v.rule in _NOT_PINNED and v.actual == UNPINNED:
                notes.append(_NOT_PINNED[v.rule])
            else:
                violations.append(str(v))
        if policy is not None:
            notes.append("report-data binding not checked (no broker transcript on the command line)")
        notes.extend(f"warning: {w}" for w in result.warnings)
    devices = (verified.cpu, *verified.gpus)
    return Verdict(evidence.cpu.kind, devices, claims, verified.failures, tuple(violations), tuple(notes))
