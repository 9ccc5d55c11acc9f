"""The output of verification: what the checks established about each device, and every check that failed."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cchet.attest.evidence import CompositeEvidence

__all__ = ["Verification", "VerifiedDevice"]


@dataclass(frozen=True)
class VerifiedDevice:
    """One device as verification found it: ``device`` is ``"cpu"`` or ``"gpu<i>"``; ``tcb_status`` and
    ``advisory_ids`` come from collateral where the vendor has it (Intel); ``anchor`` is the SHA-256 of the
    root it chained to (empty when none). For GPUs, ``measurements`` is ``match`` (every measurement equals
    its signed RIM), ``mismatch``, or ``not compared`` (a driver or VBIOS RIM was unavailable: ``rims_missing``
    says which, and why), and ``rim_versions`` the versions of the RIMs verified."""

    device: str
    kind: str
    simulated: bool
    anchor: str
    tcb_status: str | None = None
    advisory_ids: tuple[str, ...] = ()
    measurements: str | None = None
    rim_versions: tuple[str, ...] = ()
    rims_missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verification:
    """What verifying one piece of composite evidence found at ``verified_at`` by ``verifier``, whether it
    passed or not: each device, and every failed check (empty when it verified). Appraisal evaluates
    policies against it; :meth:`verified` turns failures into the exception."""

    evidence: CompositeEvidence
    cpu: VerifiedDevice
    gpus: tuple[VerifiedDevice, ...]
    failures: tuple[str, ...]
    verified_at: dt.datetime
    verifier: str

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return not self.failures

    @property
    def simulated(self) -> bool:
        """True when any device chained to a simulated root."""
        return self.cpu.simulated or any(g.simulated for g in self.gpus)

    def verified(self) -> Verification:
        """This verification when it passed; otherwise raises one :class:`~cchet.errors.VerificationError`
        listing every failure, of the class of the first (:mod:`cchet.attest.verify.checks`)."""
        if self.failures:
            from cchet.attest.verify.failure import raise_failures

            raise_failures(self.failures)
        return self
