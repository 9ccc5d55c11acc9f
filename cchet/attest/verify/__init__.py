"""Verification: signatures, chains and collateral of parsed evidence; the interface real verifiers implement.

:class:`Verifier` takes :class:`~cchet.attest.evidence.CompositeEvidence` and :class:`VerifyOptions` and
returns a :class:`Verification`: each device and every failed check, whose :meth:`Verification.verified`
raises one :class:`~cchet.errors.VerificationError` listing them, of the class of the first failure
(:mod:`cchet.attest.verify.checks`). The real implementation
is :class:`cchet.attest.verify.vendor.VendorVerifier` (vendor roots pinned in
:mod:`cchet.attest.verify.roots`, CRLs, collateral from :mod:`cchet.attest.collateral`), which
:func:`default_options` selects; :class:`cchet.attest.simulate.SimulatedVerifier` runs the same checks under
simulated roots only. Per-device entry points: :func:`~cchet.attest.verify.intel.verify_quote_device`,
:func:`~cchet.attest.verify.amd.verify_snp_device`, :func:`~cchet.attest.verify.nvidia.verify_gpu_device`.
"""

from typing import TYPE_CHECKING, Any

from cchet.attest.verify.options import (
    CollateralProvider,
    TrustAnchor,
    Verifier,
    VerifyOptions,
    default_options,
    pinned_anchors,
)
from cchet.attest.verify.verified import Verification, VerifiedDevice

if TYPE_CHECKING:
    from cchet.attest.verify.vendor import VendorVerifier as VendorVerifier

__all__ = [
    "CollateralProvider",
    "TrustAnchor",
    "VendorVerifier",
    "Verification",
    "VerifiedDevice",
    "Verifier",
    "VerifyOptions",
    "default_options",
    "pinned_anchors",
]


def __getattr__(name: str) -> Any:
    """``VendorVerifier`` loads on first use: it imports the parsers and x509 handling."""
    if name == "VendorVerifier":
        from cchet.attest.verify.vendor import VendorVerifier

        return VendorVerifier
    raise AttributeError(f"module 'cchet.attest.verify' has no attribute {name!r}")
