"""cchet: confidential heterogeneous compute for Python.

Seal data under keys that only attested workers receive, and run Ray tasks on CPU TEEs and
confidential GPUs. Importing cchet starts nothing, reads no device, prints nothing, and imports
neither Ray nor CuPy.

The public names are listed in ``docs/api.md``; a test keeps ``__all__`` equal to that list.
"""

from typing import TYPE_CHECKING

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
    BrokerBusy,
    BrokerError,
    CchetError,
    CertificateChainError,
    CollateralError,
    DeviceUnavailable,
    EvidenceFormatError,
    FetchError,
    IntegrityError,
    KernelRefused,
    KeyReleaseDenied,
    MeasurementMismatchError,
    NonceMismatchError,
    PlacementError,
    PolicyViolation,
    ProtocolError,
    RayFailure,
    RevocationError,
    SealedFormatError,
    SignatureError,
    TcbError,
    TicketError,
    TokenError,
    VerificationError,
)

__all__ = [
    "AttestationError",
    "AttestationResult",
    "BrokerBusy",
    "BrokerError",
    "CchetError",
    "CertificateChainError",
    "CollateralError",
    "DataKey",
    "DeviceUnavailable",
    "KernelRefused",
    "EvidenceFormatError",
    "FetchError",
    "IntegrityError",
    "KeyReleaseDenied",
    "MeasurementMismatchError",
    "NonceMismatchError",
    "PlacementError",
    "Policy",
    "PolicyViolation",
    "ProtocolError",
    "RayFailure",
    "RevocationError",
    "SealWriter",
    "SealedFormatError",
    "SealedRef",
    "SignatureError",
    "TcbError",
    "TicketError",
    "TokenError",
    "UnsealReader",
    "VerificationError",
    "__version__",
    "appraise",
    "get",
    "init",
    "put",
    "remote",
    "seal",
    "seal_into",
    "sealed_size",
    "shutdown",
    "unseal",
    "unseal_into",
]

if TYPE_CHECKING:  # the lazily loaded names, for type checkers
    from cchet.runtime.objects import get, put
    from cchet.runtime.remote import remote
    from cchet.runtime.sealedref import SealedRef
    from cchet.runtime.session import init, shutdown

# Loaded on first use, so that ``import cchet`` imports no Ray: name -> module that defines it.
_LAZY = {
    "init": "cchet.runtime.session",
    "shutdown": "cchet.runtime.session",
    "remote": "cchet.runtime.remote",
    "get": "cchet.runtime.objects",
    "put": "cchet.runtime.objects",
    "SealedRef": "cchet.runtime.sealedref",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cchet' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
