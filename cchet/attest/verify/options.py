"""What verification takes from the outside world: time, trust anchors, collateral, the verifier itself.

Nothing in :mod:`cchet.attest.verify` reads the clock, the network or the file system on its own; it all
comes through :class:`VerifyOptions`, built by :func:`default_options`. Tests pass a fixed ``now`` and local
collateral.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from cryptography import x509

if TYPE_CHECKING:
    from cchet.attest.evidence import CompositeEvidence
    from cchet.attest.formats.dcap import Quote
    from cchet.attest.formats.snp import SnpReport
    from cchet.attest.verify.roots import PinnedRoot
    from cchet.attest.verify.verified import Verification

__all__ = [
    "VENDORS",
    "CollateralProvider",
    "IntelCollateralSource",
    "NoCollateral",
    "TrustAnchor",
    "Verifier",
    "VerifyOptions",
    "default_options",
    "pinned_anchors",
]

VENDORS = ("intel", "amd", "nvidia", "nvidia-rim", "hygon", "arm-cca")
RAW_ROOT_VENDORS = ("hygon", "arm-cca")
"""Vendors whose roots are not X.509 certificates: a Hygon root key certificate (Hygon's own format), an Arm
CCA platform attestation key. Their anchor holds those bytes as they are, named by ``name``."""

IntelCollateralSource = Callable[["Quote"], "Mapping[str, str] | None"]
"""Returns dcap-qvl ``QuoteCollateralV3`` JSON fields for a quote, or None when it has none."""


@dataclass(frozen=True)
class TrustAnchor:
    """A root trusted for one vendor: its certificate, or only its SHA-256 fingerprint (a pinned vendor root,
    whose certificate arrives with the evidence). ``simulated`` anchors must carry their certificate and say
    SIMULATED in its subject; everything verified under them is stamped SIMULATED. For the vendors of
    :data:`RAW_ROOT_VENDORS` ``certificate_der`` holds the root in its own format and ``name`` stands for the
    subject. Raises ``ValueError`` for an unknown vendor, a fingerprint that does not match the certificate,
    or a SIMULATED mismatch."""

    vendor: str
    certificate_der: bytes = b""
    simulated: bool = False
    sha256: str = ""
    name: str = ""

    def __post_init__(self) -> None:
        if self.vendor not in VENDORS:
            raise ValueError(f"vendor must be one of {', '.join(VENDORS)}")
        if not self.certificate_der:
            if len(self.sha256) != 64 or self.simulated:
                raise ValueError("a trust anchor needs its certificate, or (real roots only) a SHA-256 fingerprint")
            object.__setattr__(self, "sha256", self.sha256.lower())
            return
        if self.vendor in RAW_ROOT_VENDORS:
            if not self.name:
                raise ValueError(f"a {self.vendor} trust anchor (not an X.509 certificate) needs a name")
            subject = self.name
        else:
            subject = x509.load_der_x509_certificate(self.certificate_der).subject.rfc4514_string()
        if self.simulated and "SIMULATED" not in subject:
            raise ValueError("a simulated trust anchor's subject must say SIMULATED")
        if not self.simulated and "SIMULATED" in subject:
            raise ValueError("a root whose subject says SIMULATED can only be a simulated anchor")
        digest = hashlib.sha256(self.certificate_der).hexdigest()
        if self.sha256 and self.sha256.lower() != digest:
            raise ValueError("the fingerprint does not match the certificate")
        object.__setattr__(self, "sha256", digest)
        if not self.name:
            object.__setattr__(self, "name", subject)

    @classmethod
    def pinned(cls, root: PinnedRoot) -> TrustAnchor:
        """The anchor for a vendor root pinned in :mod:`cchet.attest.verify.roots`."""
        return cls(root.vendor, sha256=root.sha256, name=root.name)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the DER, lowercase hex."""
        return self.sha256


def pinned_anchors() -> tuple[TrustAnchor, ...]:
    """The real vendor roots: Intel SGX Root CA, AMD ARK Milan/Genoa/Turin, NVIDIA Device Identity CA, NVIDIA
    RIM signing root and the Hygon Root Key, each pinned by fingerprint."""
    from cchet.attest.verify.roots import AMD_ARKS, HYGON_HRK, INTEL_SGX_ROOT, NVIDIA_DEVICE_ROOT, NVIDIA_RIM_ROOT

    roots = (INTEL_SGX_ROOT, *AMD_ARKS.values(), NVIDIA_DEVICE_ROOT, NVIDIA_RIM_ROOT, HYGON_HRK)
    return tuple(TrustAnchor.pinned(r) for r in roots)


class CollateralProvider(Protocol):
    """Where verification finds what the evidence does not carry (the verifier uses the evidence's own
    certificates first). Each method returns None when it has nothing; implementations
    (:class:`cchet.attest.collateral.CollateralSource`) try a local cache, then an injected fetcher, and
    never read the clock themselves: ``now`` only decides whether cached collateral is still current."""

    def intel(self, quote: Quote, now: dt.datetime) -> Mapping[str, str] | None:
        """dcap-qvl ``QuoteCollateralV3`` JSON fields for the quote's FMSPC and TEE type."""

    def amd_chain(self, product: str, key: str, now: dt.datetime) -> bytes | None:
        """PEM of the ASK (``key="vcek"``) or ASVK (``"vlek"``) followed by the ARK of ``product``."""

    def amd_vcek(self, report: SnpReport, product: str, now: dt.datetime) -> bytes | None:
        """DER of the VCEK for the report's chip id and reported TCB."""

    def amd_crl(self, product: str, key: str, now: dt.datetime) -> bytes | None:
        """DER of the ARK's CRL for ``product``."""

    def nvidia_rim(self, rim_id: str, now: dt.datetime) -> bytes | None:
        """The signed RIM (SWID XML) with this id."""


class NoCollateral:
    """A :class:`CollateralProvider` that has nothing: verification gets only what the evidence carries (and,
    for Intel quotes, ``VerifyOptions.intel_collateral``). Subclass it to supply one kind of collateral."""

    def intel(self, quote: Quote, now: dt.datetime) -> Mapping[str, str] | None:
        return None

    def amd_chain(self, product: str, key: str, now: dt.datetime) -> bytes | None:
        return None

    def amd_vcek(self, report: SnpReport, product: str, now: dt.datetime) -> bytes | None:
        return None

    def amd_crl(self, product: str, key: str, now: dt.datetime) -> bytes | None:
        return None

    def nvidia_rim(self, rim_id: str, now: dt.datetime) -> bytes | None:
        return None


class Verifier(Protocol):
    """Checks every signature, chain and collateral of composite evidence.

    Implementations run every independent check and return a
    :class:`~cchet.attest.verify.verified.Verification` listing each device and every failure (never raising
    for a failed check); they raise :class:`~cchet.errors.EvidenceFormatError` only for evidence whose
    certificates do not decode.
    """

    name: str

    def check(self, evidence: CompositeEvidence, options: VerifyOptions) -> Verification: ...


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class VerifyOptions:
    """``clock`` gives the verification time; ``anchors`` the trusted roots; ``intel_collateral`` TCB info and
    QE identity for quotes (consulted before ``collateral``); ``collateral`` everything else the evidence
    does not carry; ``verifier`` the implementation :func:`cchet.attest.appraise` calls; ``rims`` signed
    NVIDIA RIMs given directly (SWID XML documents), consulted before ``collateral``; ``amd_stepping`` the
    product stepping SNP keys must be issued for (``Milan-B0`` is 0), None to accept any; ``amd_product``
    the product (Milan, Genoa, Turin) of v2 SNP reports that come without certificates (v3+ reports say);
    ``expected_report_data`` the exact 64 bytes the CPU report must carry (a verification failure otherwise;
    the broker checks the binding in appraisal instead, ``cchet verify --nonce`` sets this)."""

    clock: Callable[[], dt.datetime] = _utcnow
    anchors: tuple[TrustAnchor, ...] = ()
    intel_collateral: IntelCollateralSource | None = None
    verifier: Verifier | None = None
    collateral: CollateralProvider | None = None
    rims: tuple[bytes, ...] = field(default=())
    amd_stepping: int | None = None
    amd_product: str | None = None
    expected_report_data: bytes | None = None

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
    anchors: tuple[TrustAnchor, ...] | None = None,
    intel_collateral: IntelCollateralSource | None = None,
    verifier: Verifier | None = None,
    collateral: CollateralProvider | None = None,
    rims: tuple[bytes, ...] = (),
) -> VerifyOptions:
    """Options for real evidence: the system clock (or a fixed ``now``), the pinned vendor roots
    (:func:`pinned_anchors`, or the ``anchors`` given), the real verifier
    (:class:`~cchet.attest.verify.vendor.VendorVerifier`) and collateral from the evidence, then the local
    collateral cache (``cchet collateral fetch`` fills it; ``$CCHET_COLLATERAL_DIR`` or
    ``~/.cache/cchet/collateral``). No fetcher is configured, so nothing here reaches the network: pass a
    :class:`~cchet.attest.collateral.CollateralSource` with a fetcher for that. Unless ``anchors`` are
    given, no simulated root is trusted (:func:`cchet.attest.simulate.simulation_options` passes them).
    """
    from cchet.attest.collateral.source import CollateralSource
    from cchet.attest.verify.vendor import VendorVerifier

    clock: Callable[[], dt.datetime] = _utcnow if now is None else (lambda: now)
    return VerifyOptions(
        clock=clock,
        anchors=pinned_anchors() if anchors is None else anchors,
        intel_collateral=intel_collateral,
        verifier=verifier or VendorVerifier(),
        collateral=collateral if collateral is not None else CollateralSource.default(),
        rims=rims,
    )
