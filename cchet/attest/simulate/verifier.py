"""The minimal verifier for SIMULATED evidence: signatures and chains against the simulated roots only.

It runs the same checks the real verifiers build on (:mod:`cchet.attest.verify`): for quotes the quote and
QE signatures, the QE binding, the PCK chain, TCB status from (simulated) collateral and the replay of a
TDX event log when one is attached; for SNP the VCEK
chain, the report signature and the key's TCB; for GPUs the device chain, the SPDM signature and the FWID.
It trusts simulated anchors only: real evidence never verifies here, whatever anchors the options carry, so
nothing real can be accepted without the revocation and collateral checks of the real verifiers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from cchet.attest.evidence import CompositeEvidence
from cchet.attest.formats.dcap import Quote
from cchet.attest.simulate.authority import SimulatedAuthority
from cchet.attest.simulate.dcap import simulated_collateral
from cchet.attest.verify.dcap import check_quote
from cchet.attest.verify.event_log import check_event_log
from cchet.attest.verify.gpu import check_gpu
from cchet.attest.verify.options import TrustAnchor, VerifyOptions, default_options
from cchet.attest.verify.snp import check_snp
from cchet.attest.verify.verified import VerifiedDevice, VerifiedEvidence
from cchet.errors import VerificationError

__all__ = ["SimulatedVerifier", "simulated_anchors", "simulation_options"]


def simulated_anchors(authority: SimulatedAuthority) -> tuple[TrustAnchor, ...]:
    """The simulated Intel, AMD and NVIDIA roots of ``authority`` as simulated trust anchors."""
    return (
        TrustAnchor("intel", authority.der("intel_root"), simulated=True),
        TrustAnchor("amd", authority.der("amd_ark"), simulated=True),
        TrustAnchor("nvidia", authority.der("nvidia_root"), simulated=True),
    )


class SimulatedVerifier:
    """Implements :class:`~cchet.attest.verify.options.Verifier` for evidence under simulated roots."""

    name = "cchet-simulated-verifier"

    def verify(self, evidence: CompositeEvidence, options: VerifyOptions) -> VerifiedEvidence:
        """Runs every check; raises one :class:`VerificationError` listing every failure, or returns the
        verified evidence (stamped simulated). Raises :class:`~cchet.errors.EvidenceFormatError` when a
        certificate inside the evidence does not decode."""
        now = options.now()
        failures: list[str] = []

        def sim(vendor: str) -> tuple[TrustAnchor, ...]:
            anchors = tuple(a for a in options.anchors_for(vendor) if a.simulated)
            if not anchors:
                failures.append(f"no simulated {vendor} root in the options (this verifier trusts nothing else)")
            return anchors

        report = evidence.cpu.report
        tcb_status: str | None = None
        advisories: tuple[str, ...] = ()
        if isinstance(report, Quote):
            collateral = options.intel_collateral(report) if options.intel_collateral else None
            qc = check_quote(report, sim("intel"), now, collateral)
            failures.extend(qc.failures)
            failures.extend(check_event_log(report, evidence.cpu.event_log))
            anchor, tcb_status, advisories = qc.anchor, qc.tcb_status, qc.advisory_ids
        else:
            sc = check_snp(report, evidence.cpu.certificates, sim("amd"), now)
            failures.extend(sc.failures)
            anchor = sc.anchor
        cpu = VerifiedDevice(
            "cpu", evidence.cpu.kind, True, anchor.fingerprint if anchor else "", tcb_status, advisories
        )
        gpus = []
        nvidia = sim("nvidia") if evidence.gpus else ()
        for g in evidence.gpus:
            gc = check_gpu(g.report, g.certificates, nvidia, now, what=f"gpu{g.index}")
            failures.extend(gc.failures)
            gpus.append(VerifiedDevice(f"gpu{g.index}", "nvidia-gpu", True, gc.anchor.fingerprint if gc.anchor else ""))
        if failures:
            raise VerificationError(failures)
        return VerifiedEvidence(evidence, cpu, tuple(gpus), now, self.name)


def simulation_options(
    authority: SimulatedAuthority,
    *,
    now: dt.datetime | None = None,
    tcb_status: str = "UpToDate",
    advisory_ids: Sequence[str] = (),
    collateral: Mapping[str, str] | None = None,
) -> VerifyOptions:
    """Options that verify SIMULATED evidence of ``authority``: its roots as simulated anchors, simulated
    Intel collateral with ``tcb_status`` and ``advisory_ids`` (or the fixed ``collateral`` given), and the
    :class:`SimulatedVerifier`."""

    def intel(quote: Quote) -> Mapping[str, str]:
        if collateral is not None:
            return collateral
        at = now or dt.datetime.now(dt.UTC)
        return simulated_collateral(authority, quote, now=at, tcb_status=tcb_status, advisory_ids=advisory_ids)

    return default_options(
        now=now, anchors=simulated_anchors(authority), intel_collateral=intel, verifier=SimulatedVerifier()
    )
