"""Appraisal: verify composite evidence once, then evaluate :class:`~cchet.attest.policy.Policy` values
against what verification found.

One pipeline, used by the key broker, the node registry and ``cchet verify`` alike: :func:`verify_evidence`
runs the verifier from the options once (every signature, chain and collateral check) and returns a
:class:`~cchet.attest.verify.verified.Verification`; :func:`evaluate` applies one policy to it -- the
report-data binding, nonce freshness and every rule -- collecting all failures before deciding;
:func:`appraise` is both steps for one policy. Nothing else decides. None of them raises for bad evidence:
the :class:`~cchet.attest.result.AttestationResult` lists every reason, and its ``raise_for_status`` raises
when the caller prefers exceptions.

What it protects against: evidence that is forged, stale, bound to another broker, nonce, key, request or
set of GPUs, or from a TEE the policy does not accept. What it does not: code in an attested TEE that the
policy's measurements admit is trusted with the keys; with ``measurements="any"`` that is any code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import UnsupportedAlgorithm

from cchet.attest.binding import Binding, compute_report_data, gpu_nonce, report_data_matches
from cchet.attest.policy import CPU_PINS, TCB_STATUS_ORDER, Policy, version_tuple
from cchet.attest.result import AttestationResult, DeviceClaims, Violation
from cchet.attest.tees import is_extra, tee
from cchet.errors import AttestationError

if TYPE_CHECKING:
    from cchet.attest.evidence import CompositeEvidence
    from cchet.attest.formats.dcap import SgxReportBody, TdReportBody
    from cchet.attest.formats.snp import SnpReport
    from cchet.attest.verify.options import VerifyOptions
    from cchet.attest.verify.verified import Verification, VerifiedDevice

# Parsers, claims and verifiers are imported on first use, so ``import cchet`` stays light.

__all__ = ["UNPINNED", "appraise", "evaluate", "verify_evidence"]

UNPINNED = "none pinned"  # the actual value of a violation saying the policy pins nothing for its rule

log = logging.getLogger("cchet.attest.appraise")


class _Rules:
    def __init__(self) -> None:
        self.violations: list[Violation] = []

    def fail(self, rule: str, evidence_field: str, device: str, expected: object, actual: object) -> None:
        self.violations.append(Violation(rule, evidence_field, device, str(expected), str(actual)))

    def pinned(self, policy: Policy, rule: str, evidence_field: str, actual: bytes, device: str = "cpu") -> None:
        allowed: tuple[str, ...] = getattr(policy, rule)
        if allowed and actual.hex() not in allowed:
            self.fail(rule, evidence_field, device, "one of " + ", ".join(allowed), actual.hex())


def _check_tdx(r: _Rules, policy: Policy, body: TdReportBody) -> None:
    for i in range(4):
        r.pinned(policy, f"rtmr{i}", f"td_report.rtmr{i}", body.rtmrs[i])
    r.pinned(policy, "mrtd", "td_report.mr_td", body.mr_td)
    r.pinned(policy, "mrconfigid", "td_report.mr_config_id", body.mr_config_id)
    if body.debug and not policy.allow_debug:
        r.fail("allow_debug", "td_report.td_attributes.DEBUG", "cpu", "false", "true")


def _check_sgx(r: _Rules, policy: Policy, body: SgxReportBody) -> None:
    r.pinned(policy, "mrenclave", "sgx_report.mr_enclave", body.mr_enclave)
    r.pinned(policy, "mrsigner", "sgx_report.mr_signer", body.mr_signer)
    if policy.isv_prod_id is not None and body.isv_prod_id != policy.isv_prod_id:
        r.fail("isv_prod_id", "sgx_report.isv_prod_id", "cpu", policy.isv_prod_id, body.isv_prod_id)
    if policy.min_isv_svn is not None and body.isv_svn < policy.min_isv_svn:
        r.fail("min_isv_svn", "sgx_report.isv_svn", "cpu", f">= {policy.min_isv_svn}", body.isv_svn)
    if body.debug and not policy.allow_debug:
        r.fail("allow_debug", "sgx_report.attributes.DEBUG", "cpu", "false", "true")


def _check_snp(r: _Rules, policy: Policy, report: SnpReport) -> None:
    from cchet.attest.formats.snp import POLICY_MIGRATE_MA, POLICY_SMT

    r.pinned(policy, "snp_measurement", "snp_report.measurement", report.measurement)
    r.pinned(policy, "snp_host_data", "snp_report.host_data", report.host_data)
    if report.debug and not policy.allow_debug:
        r.fail("allow_debug", "snp_report.policy.DEBUG", "cpu", "false", "true")
    if report.policy & POLICY_SMT and not policy.snp_allow_smt:
        r.fail("snp_allow_smt", "snp_report.policy.SMT", "cpu", "false", "true")
    if report.policy & POLICY_MIGRATE_MA and not policy.snp_allow_migration_agent:
        r.fail("snp_allow_migration_agent", "snp_report.policy.MIGRATE_MA", "cpu", "false", "true")
    if report.vmpl != policy.snp_vmpl:
        r.fail("snp_vmpl", "snp_report.vmpl", "cpu", policy.snp_vmpl, report.vmpl)
    if policy.snp_min_tcb is not None:
        t = report.tcb("reported")
        got = (t.bootloader, t.tee, t.snp, t.microcode)
        if any(g < w for g, w in zip(got, policy.snp_min_tcb, strict=True)):
            r.fail("snp_min_tcb", "snp_report.reported_tcb", "cpu", f">= {list(policy.snp_min_tcb)}", list(got))


def _check_extra(r: _Rules, policy: Policy, kind: str, report: Any) -> None:
    """A TEE family's kind: the debug rule, then the rules of its policy table (:mod:`cchet.attest.tees`)."""
    family = tee(kind)
    if family.debug(report) and not policy.allow_debug:
        r.fail("allow_debug", f"{kind}.debug", "cpu", "false", "true")

    def fail(rule: str, evidence_field: str, expected: Any, actual: Any) -> None:
        r.fail(rule, evidence_field, "cpu", expected, actual)

    family.evaluate(report, policy.table(kind), fail)


def _check_tcb(r: _Rules, policy: Policy, verified: Verification) -> None:
    if not verified.ok or (verified.evidence.cpu.kind not in ("tdx", "sgx") and verified.cpu.tcb_status is None):
        return  # Intel TCB status: of TDX and SGX quotes, and of a family's kind whose verifier reports one
    status = verified.cpu.tcb_status
    rank = {s: i for i, s in enumerate(TCB_STATUS_ORDER)}
    if status is None or rank.get(status, len(rank)) > rank[policy.min_tcb_status]:
        advisories = ", ".join(verified.cpu.advisory_ids)
        actual = f"{status} (advisories: {advisories})" if advisories else status
        r.fail("min_tcb_status", "collateral.tcb_status", "cpu", f"{policy.min_tcb_status} or better", actual)
    unaccepted = [a for a in verified.cpu.advisory_ids if a not in policy.accepted_advisories]
    if unaccepted:
        r.fail(
            "accepted_advisories",
            "collateral.advisory_ids",
            "cpu",
            list(policy.accepted_advisories),
            unaccepted,
        )


def _check_gpus(r: _Rules, policy: Policy, verified: Verification, warnings: list[str]) -> None:
    evidence = verified.evidence
    if policy.gpu == "required" and not evidence.gpus:
        r.fail("gpu", "gpus", "gpus", "at least one GPU report", "none")
    if policy.gpu == "forbidden" and evidence.gpus:
        r.fail("gpu", "gpus", "gpus", "no GPU", f"{len(evidence.gpus)} GPU report(s)")
    from cchet.attest.claims import gpu_rim_ids

    for g in evidence.gpus:
        dev = f"gpu{g.index}"
        ids = gpu_rim_ids(g)
        if policy.gpu_rim_ids and (not ids or any(i not in policy.gpu_rim_ids for i in ids)):
            r.fail(
                "gpu_rim_ids",
                "spdm.opaque.rim_ids",
                dev,
                "RIM ids among " + ", ".join(policy.gpu_rim_ids),
                list(ids),
            )
        for rule, value, name in (
            ("min_driver_version", g.report.driver_version, "driver_version"),
            ("min_vbios_version", g.report.vbios_version, "vbios_version"),
        ):
            minimum = getattr(policy, rule)
            if minimum is None:
                continue
            try:
                ok = value is not None and version_tuple(value, name=rule) >= version_tuple(minimum, name=rule)
            except ValueError:
                ok = False
            if not ok:
                r.fail(rule, f"spdm.opaque.{name}", dev, f">= {minimum}", value)
        if g.cc_mode == "devtools":
            if policy.gpu_allow_devtools:
                warnings.append(f"{dev}: CC mode devtools (GPU memory is not protected), allowed by gpu_allow_devtools")
            else:
                r.fail("gpu_allow_devtools", "gpu.cc_mode", dev, "CC mode on", "devtools")
    for device in verified.gpus:
        if device.measurements != "not compared":
            continue  # a match passes; a mismatch is a verification failure already
        missing = "; ".join(device.rims_missing) or "no driver or VBIOS RIM"
        if policy.gpu_measurements == "match":
            r.fail(
                "gpu_measurements",
                "spdm.measurements",
                device.device,
                "a match with NVIDIA's signed driver and VBIOS RIMs",
                f"not compared: {missing}",
            )
        else:
            warnings.append(
                f"{device.device}: measurements not compared with signed RIMs ({missing}); accepted under "
                "gpu_measurements='unchecked'"
            )


def _check_binding(
    r: _Rules, policy: Policy, evidence: CompositeEvidence, nonce: bytes | None, binding: Binding | None
) -> None:
    if not policy.require_binding:
        return
    if binding is None or nonce is None or len(nonce) != 32:
        r.fail(
            "require_binding",
            "cpu.report_data",
            "cpu",
            "a 32-byte nonce and a binding to check",
            "none given",
        )
        return
    actual = evidence.cpu.report.report_data
    try:
        expected = compute_report_data(binding, nonce, evidence.gpu_transcripts())
    except ValueError as e:
        r.fail("require_binding", "gpus", "cpu", "GPU reports that fit the transcript", str(e))
        return
    if not report_data_matches(expected, actual):
        r.fail(
            "require_binding",
            "cpu.report_data",
            "cpu",
            f"cchet/v1/bind transcript {expected.hex()[:16]}...",
            f"{actual.hex()[:16]}... ({len(actual)} bytes)",
        )
    for g in evidence.gpus:
        want = gpu_nonce(nonce, g.index)
        if not hmac.compare_digest(want, g.report.request.nonce):
            r.fail(
                "require_binding",
                "spdm.request.nonce",
                f"gpu{g.index}",
                want.hex(),
                g.report.request.nonce.hex(),
            )


def verify_evidence(evidence: CompositeEvidence, options: VerifyOptions | None = None) -> Verification:
    """Run the options' verifier on ``evidence`` once and return what it found, every failure included; never
    raises for bad evidence (certificates that do not decode are a failure like any other).

    ``options`` supply time, trust anchors, collateral and the verifier (default:
    :func:`~cchet.attest.verify.options.default_options`, the real verifier under the pinned vendor roots;
    options without a verifier get the simulated verifier, which trusts simulated roots only)."""
    from cchet.attest.reference import is_simulated
    from cchet.attest.simulate.verifier import SimulatedVerifier
    from cchet.attest.verify.options import default_options
    from cchet.attest.verify.verified import Verification, VerifiedDevice

    opts = options or default_options()
    verifier = opts.verifier if opts.verifier is not None else SimulatedVerifier()
    try:
        return verifier.check(evidence, opts)
    except AttestationError as e:
        failure = str(e)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        # cryptography refusing a malformed certificate or key deep inside the evidence
        failure = f"evidence could not be verified: {type(e).__name__}: {e}"
    # nothing was established; evidence that names a SIMULATED authority is stamped so (it cannot be better)
    sim = is_simulated(evidence)
    cpu = VerifiedDevice("cpu", evidence.cpu.kind, sim, "")
    gpus = tuple(VerifiedDevice(f"gpu{g.index}", "nvidia-gpu", sim, "") for g in evidence.gpus)
    return Verification(evidence, cpu, gpus, (failure,), opts.now(), verifier.name)


def evaluate(
    verified: Verification,
    policy: Policy,
    *,
    nonce: bytes | None,
    binding: Binding | None,
    nonce_issued_at: dt.datetime | None = None,
) -> AttestationResult:
    """Apply ``policy`` to what verification found; returns the result with every reason, never raising for
    bad evidence. Evaluating several policies against one :class:`Verification` verifies once.

    ``nonce`` (32 bytes) and ``binding`` are what the broker expects the report data to bind (DESIGN.md
    section 4); GPU ``i`` must have answered ``gpu_nonce(nonce, i)``. ``nonce_issued_at`` enables the freshness
    rule (``max_nonce_age_s``). Raises ``TypeError`` when ``policy`` is not a :class:`Policy`."""
    if not isinstance(policy, Policy):
        raise TypeError("policy must be a cchet.Policy")
    from cchet.attest.reference import is_simulated

    evidence = verified.evidence
    now = verified.verified_at
    simulated = verified.simulated or (not verified.ok and is_simulated(evidence))
    r = _Rules()
    warnings: list[str] = []
    kind = evidence.cpu.kind
    if kind not in policy.tee_kinds:
        r.fail("tee_kinds", "cpu.kind", "cpu", "one of " + ", ".join(policy.tee_kinds), kind)
    if simulated and not policy.allow_simulation:
        r.fail("allow_simulation", "cpu.root", "cpu", "a vendor root", "a SIMULATED root")
    report = evidence.cpu.report
    from cchet.attest.formats.dcap import Quote, TdReportBody

    if is_extra(kind):
        _check_extra(r, policy, kind, report)
    elif isinstance(report, Quote):
        if isinstance(report.body, TdReportBody):
            _check_tdx(r, policy, report.body)
        else:
            _check_sgx(r, policy, report.body)
    else:
        _check_snp(r, policy, report)
    waived = simulated and policy.allow_simulation  # simulated evidence under a policy that allows it
    if policy.measurements == "pinned" and not waived:
        if not policy.pins_cpu(kind):
            pins = "/".join(CPU_PINS[kind]) if kind in CPU_PINS else f"{tee(kind).section} table"
            r.fail("measurements", f"cpu.{pins}", "cpu", f"pinned {kind} measurements", UNPINNED)
        if kind == "snp" and policy.snp_min_tcb is None:
            r.fail("snp_min_tcb", "snp_report.reported_tcb", "cpu", "a TCB floor", UNPINNED)
    _check_tcb(r, policy, verified)
    _check_gpus(r, policy, verified, warnings)
    _check_binding(r, policy, evidence, nonce, binding)
    if nonce_issued_at is not None:
        age = (now - nonce_issued_at).total_seconds()
        if not 0 <= age <= policy.max_nonce_age_s:
            r.fail(
                "max_nonce_age_s",
                "nonce.issued_at",
                "cpu",
                f"<= {policy.max_nonce_age_s} s old",
                f"{age:.1f} s",
            )
    if policy.measurements == "any" and not policy.pins_cpu(kind):
        warnings.insert(0, f"cpu: no {kind} measurement checked (policy measurements='any')")
    failures = list(verified.failures)
    if not failures and not r.violations:
        for warning in warnings:
            log.warning("ACCEPTED evidence under policy %s with a warning: %s", policy.policy_id, warning)
    return _result(
        policy,
        verified,
        simulated=simulated,
        failures=failures,
        violations=r.violations,
        warnings=warnings,
        digest=hashlib.sha256(evidence.to_bytes()).hexdigest(),
    )


def appraise(
    evidence: CompositeEvidence | bytes,
    policy: Policy,
    *,
    nonce: bytes | None,
    binding: Binding | None,
    options: VerifyOptions | None = None,
    nonce_issued_at: dt.datetime | None = None,
) -> AttestationResult:
    """Verify ``evidence`` (:func:`verify_evidence`) and evaluate ``policy`` against it (:func:`evaluate`);
    returns the result with every reason, never raising for bad evidence. ``evidence`` is
    :class:`CompositeEvidence` or its wire bytes (which must parse: a parse failure is the one reason then).
    Raises ``TypeError`` when ``policy`` is not a :class:`Policy`."""
    if not isinstance(policy, Policy):
        raise TypeError("policy must be a cchet.Policy")
    from cchet.attest.evidence import decode_composite
    from cchet.attest.verify.options import default_options

    opts = options or default_options()
    if isinstance(evidence, bytes | bytearray):
        wire = bytes(evidence)
        try:
            evidence = decode_composite(wire)
        except AttestationError as e:
            return _rejected(policy, [f"evidence does not parse: {e}"], opts.now(), hashlib.sha256(wire).hexdigest())
    return evaluate(
        verify_evidence(evidence, opts), policy, nonce=nonce, binding=binding, nonce_issued_at=nonce_issued_at
    )


def _failure_device(failure: str) -> str:
    """The device a verification failure is about: ``gpu<i>`` when it says so first, else ``cpu``."""
    head = re.split(r"[:. ]", failure, maxsplit=1)[0]
    return head if re.fullmatch(r"gpu\d+", head) else "cpu"


def _status(device: str, violations: list[Violation], failures: list[str]) -> str:
    bad = any(v.device in (device, "gpus") for v in violations) or any(_failure_device(f) == device for f in failures)
    return "contraindicated" if bad else "affirming"


def _result(
    policy: Policy,
    verified: Verification,
    *,
    simulated: bool,
    failures: list[str],
    violations: list[Violation],
    warnings: list[str],
    digest: str,
) -> AttestationResult:
    from cchet.attest.claims import cpu_claims, gpu_claims

    evidence = verified.evidence
    cpu_c: dict[str, Any] = cpu_claims(evidence)
    if verified.ok:
        cpu_c["tcb_status"] = verified.cpu.tcb_status
        cpu_c["advisory_ids"] = list(verified.cpu.advisory_ids)
    verified_gpus = {g.device: g for g in verified.gpus}
    devices = [DeviceClaims("cpu", evidence.cpu.kind, _status("cpu", violations, failures), simulated, cpu_c)]
    for g in evidence.gpus:
        name = f"gpu{g.index}"
        devices.append(
            DeviceClaims(
                name,
                "nvidia-gpu",
                _status(name, violations, failures),
                simulated,
                _gpu_claims(gpu_claims(g), verified_gpus.get(name)),
            )
        )
    accepted = not failures and not violations
    return AttestationResult(
        accepted=accepted,
        simulated=simulated,
        policy_id=policy.policy_id,
        devices=tuple(devices),
        violations=tuple(violations),
        verification_failures=tuple(failures),
        evidence_digest=digest,
        appraised_at=verified.verified_at,
        verifier=verified.verifier,
        gpu_transcripts=tuple(evidence.gpu_transcripts()),
        warnings=tuple(warnings) if accepted else (),
    )


def _gpu_claims(claims: dict[str, Any], verified: VerifiedDevice | None) -> dict[str, Any]:
    """GPU claims plus what verification found about its measurements against signed RIMs."""
    if verified is not None:
        claims["rim_measurements"] = verified.measurements
        claims["rim_versions_verified"] = list(verified.rim_versions)
        claims["rims_missing"] = list(verified.rims_missing)
    return claims


def _rejected(policy: Policy, failures: list[str], now: dt.datetime, digest: str) -> AttestationResult:
    return AttestationResult(
        accepted=False,
        simulated=False,
        policy_id=policy.policy_id,
        devices=(),
        violations=(),
        verification_failures=tuple(failures),
        evidence_digest=digest,
        appraised_at=now,
        verifier="none",
    )
