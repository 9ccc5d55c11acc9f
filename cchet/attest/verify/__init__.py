"""Verification: signatures, chains and collateral of parsed evidence; the interface real verifiers implement.

:class:`Verifier` takes :class:`~cchet.attest.evidence.CompositeEvidence` and :class:`VerifyOptions` and
returns :class:`VerifiedEvidence` or raises one :class:`~cchet.errors.VerificationError` listing every
failed check. Today's implementation is :class:`cchet.attest.simulate.SimulatedVerifier` (simulated roots
only); the vendor verifiers with pinned roots, CRLs and fetchers replace it behind the same interface.
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
