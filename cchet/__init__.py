"""cchet: confidential heterogeneous compute for Python.

Seal data under keys that only attested workers receive, and run Ray tasks on CPU TEEs and
confidential GPUs. Importing cchet starts nothing, reads no device, prints nothing, and imports
neither Ray nor CuPy.

The public names are listed in ``docs/api.md``; a test keeps ``__all__`` equal to that list.
"""

from cchet._version import __version__
from cchet.attest.appraise import appraise
from cchet.attest.policy import Policy
from cchet.attest.result import AttestationResult
from cchet.crypto import (
    DataKey,
    SealWriter,
    UnsealReader,
    seal,
    seal_into,
    sealed_size,
    unseal,
    unseal_into,
)
from cchet.errors import (
    AttestationError,
    BrokerError,
    CchetError,
    DeviceUnavailable,
    EvidenceFormatError,
    IntegrityError,
    KeyReleaseDenied,
    PlacementError,
    PolicyViolation,
    SealedFormatError,
    VerificationError,
)

__all__ = [
    "AttestationError",
    "AttestationResult",
    "BrokerError",
    "CchetError",
    "DataKey",
    "DeviceUnavailable",
    "EvidenceFormatError",
    "IntegrityError",
    "KeyReleaseDenied",
    "PlacementError",
    "Policy",
    "PolicyViolation",
    "SealWriter",
    "SealedFormatError",
    "UnsealReader",
    "VerificationError",
    "__version__",
    "appraise",
    "seal",
    "seal_into",
    "sealed_size",
    "unseal",
    "unseal_into",
]
