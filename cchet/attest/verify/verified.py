"""The output of verification: evidence whose signatures and chains checked out, and what the checks found."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cchet.attest.evidence import CompositeEvidence

__all__ = ["VerifiedDevice", "VerifiedEvidence"]


@dataclass(frozen=True)
class VerifiedDevice:
    """One verified device: ``device`` is ``"cpu"`` or ``"gpu<i>"``; ``tcb_status`` and ``advisory_ids`` come
    from collateral where the vendor has it (Intel); ``anchor`` is the SHA-256 of the root it chained to.
    For GPUs, ``measurements`` is ``match`` (every measurement equals its signed RIM) or ``not compared``
    (a driver or VBIOS RIM was unavailable), and ``rim_versions`` the versions of the RIMs verified."""

    device: str
    kind: str
    simulated: bool
    anchor: str
    tcb_status: str | None = None
    advisory_ids: tuple[str, ...] = ()
    measurements: str | None = None
    rim_versions: tuple[str, ...] = ()


@dataclass(frozen=True)
class VerifiedEvidence:
    """Composite evidence that passed every verification check at ``verified_at`` by ``verifier``."""

    evidence: CompositeEvidence
    cpu: VerifiedDevice
    gpus: tuple[VerifiedDevice, ...]
    verified_at: dt.datetime
    verifier: str

    @property
    def simulated(self) -> bool:
        """True when any device chained to a simulated root."""
        return self.cpu.simulated or any(g.simulated for g in self.gpus)
