"""What verification takes from the outside world: time, trust anchors, collateral, the verifier itself.

Nothing in :mod:`cchet.attest.verify` reads the clock, the network or the file system on its own; it all
comes through :class:`VerifyOptions`, built by :func:`default_options`. Tests pass a fixed ``now`` and local
collateral.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from cryptography import x509

if TYPE_CHECKING:
    from cchet.attest.evidence import CompositeEvidence
    from cchet.attest.formats.dcap import Quote
    from cchet.attest.verify.verified import VerifiedEvidence

__all__ = ["VENDORS", "IntelCollateralSource", "TrustAnchor", "Verifier", "VerifyOptions", "default_options"]

VENDORS = ("intel", "amd", "nvidia")

IntelCollateralSource = Callable[["Quote"], "Mapping[str, str] | None"]
"""Returns dcap-qvl ``QuoteCollateralV3`` JSON fields for a quote, or None when it has none."""


@dataclass(frozen=True)
class TrustAnchor:
    """A root certificate trusted for one vendor. ``simulated`` anchors must say SIMULATED in their subject,
    and everything verified under them is stamped SIMULATED."""

    vendor: str
    certificate_der: bytes
    simulated: bool = False

    def __post_init__(self) -> None:
        if self.vendor not in VENDORS:
            raise ValueError(f"vendor must be one of {', '.join(VENDORS)}")
        subject = x509.load_der_x509_certificate(self.certificate_der).subject.rfc4514_string()
        if self.simulated and "SIMULATED" not in subject:
            raise ValueError("a simulated trust anchor's subject must say SIMULATED")
        if not self.simulated and "SIMULATED" in subject:
            raise ValueError("a root whose subject says SIMULATED can only be a simulated anchor")

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the DER, lowercase hex."""
        return hashlib.sha256(self.certificate_der).hexdigest()


class Verifier(Protocol):
    """Checks every signature, chain and collateral of composite evidence.

    Implementations run every independent check and raise one :class:`~cchet.errors.VerificationError`
    listing all failures, or return :class:`~cchet.attest.verify.verified.VerifiedEvidence`.
    """

    name: str

    def verify(self, evidence: CompositeEvidence, options: VerifyOptions) -> VerifiedEvidence: ...


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class VerifyOptions:
    """``clock`` gives the verification time; ``anchors`` the trusted roots; ``intel_collateral`` TCB info and
    QE identity for quotes; ``verifier`` the implementation :func:`cchet.attest.appraise` calls."""

    clock: Callable[[], dt.datetime] = _utcnow
    anchors: tuple[TrustAnchor, ...] = ()
    intel_collateral: IntelCollateralSource | None = None
    verifier: Verifier | None = None

    def now(self) -> dt.datetime:
        t = self.clock()
        if t.tzinfo is None:
            raise ValueError("the verification clock must return an aware datetime")
        return t

    def anchors_for(self, vendor: str) -> tuple[TrustAnchor, ...]:
        return tuple(a for a in self.anchors if a.vendor == vendor)

    def replace(self, **changes: object) -> VerifyOptions:
        return replace(self, **changes)  # type: ignore[arg-type]


def default_options(
    *,
    now: dt.datetime | None = None,
    anchors: tuple[TrustAnchor, ...] = (),
    intel_collateral: IntelCollateralSource | None = None,
    verifier: Verifier | None = None,
) -> VerifyOptions:
    """Options with the system clock (or a fixed ``now``), the given anchors and collateral source.

    Vendor roots pinned by fingerprint and network fetchers arrive with the real-verification issue; until
    then the defaults trust nothing, so only evidence under anchors passed here can verify.
    """
    clock: Callable[[], dt.datetime] = _utcnow if now is None else (lambda: now)
    return VerifyOptions(clock=clock, anchors=anchors, intel_collateral=intel_collateral, verifier=verifier)
