"""Verification: signatures, chains and collateral of parsed evidence; the interface real verifiers implement.

:class:`Verifier` takes :class:`~cchet.attest.evidence.CompositeEvidence` and :class:`VerifyOptions` and
returns :class:`VerifiedEvidence` or raises one :class:`~cchet.errors.VerificationError` listing every
failed check, of the class of the first failure (:mod:`cchet.attest.verify.checks`). The real implementation
is :class:`cchet.attest.verify.vendor.VendorVerifier` (vendor roots pinned in
:mod:`cchet.attest.verify.roots`, CRLs, collateral from :mod:`cchet.attest.collateral`), which
:func:`default_options` selects; :class:`cchet.attest.simulate.SimulatedVerifier` runs the same checks under
simulated roots only. Per-device entry points: :func:`~cchet.attest.verify.intel.verify_quote_device`,
:func:`~cchet.attest.verify.amd.verify_snp_device`, :func:`~cchet.attest.verify.nvidia.verify_gpu_device`.
"""

from cchet.attest.verify.options import TrustAnchor, Verifier, VerifyOptions, default_options
from cchet.attest.verify.verified import VerifiedDevice, VerifiedEvidence

__all__ = [
    "TrustAnchor",
    "VerifiedDevice",
    "VerifiedEvidence",
    "Verifier",
    "VerifyOptions",
    "default_options",
]
