"""Every exception cchet raises on purpose, in one tree.

::

    CchetError                      root: catch this to catch anything cchet decided to raise
    ├── IntegrityError              sealed data failed to open; one fixed message once the key is used
    │   └── SealedFormatError       the stream is malformed before any key is used; names the field
    ├── AttestationError            evidence could not be trusted
    │   ├── EvidenceFormatError     evidence bytes do not parse; names the offset and the field
    │   ├── VerificationError       signatures, chains, collateral or freshness failed; ``.failures``
    │   │   ├── SignatureError          a signature over evidence, collateral or a RIM does not verify
    │   │   ├── CertificateChainError   a chain is broken, expired or does not end at a pinned vendor root
    │   │   ├── RevocationError         a certificate in a chain is on its issuer's CRL
    │   │   ├── CollateralError         collateral is missing, expired, malformed or for another platform
    │   │   │   └── FetchError          a collateral service could not be reached or answered badly
    │   │   ├── TcbError                the TCB matches no level, is revoked, or differs from the key's TCB
    │   │   ├── NonceMismatchError      the evidence answers another nonce
    │   │   └── MeasurementMismatchError  FWID, RIM measurements, event log or QE identity differ
    │   └── PolicyViolation         verified evidence does not satisfy the policy; ``.violations``
    ├── KeyReleaseDenied            the broker released nothing; ``.reasons``
    ├── BrokerError                 key release failed without an authentic refusal; no key was received
    │   ├── ProtocolError           a protocol message is malformed; names the field (also a ValueError)
    │   ├── TicketError             a call ticket is malformed or does not verify (also a ValueError)
    │   ├── TokenError              an attestation token fails verification (also a ValueError)
    │   └── BrokerBusy              the broker refuses new work for now; ``.retry_after_s``
    ├── PlacementError              no attested node can run the task, or Ray could not schedule it
    ├── RayFailure                  Ray reports the task, actor or object failed; ``.error_type``, nothing read
    ├── DeviceUnavailable           the GPU path was asked for and no usable GPU / CuPy is there
    └── KernelRefused               the GPU kernel refused a launch (status word): a bug, never a verdict

Caller mistakes (wrong types, out-of-range sizes, a destination too small) stay ``TypeError`` and
``ValueError``. No class here shadows a builtin name. ``ProtocolError``, ``TicketError`` and ``TokenError``
are also ``ValueError`` subclasses: they report malformed input, and code that parses a message, a ticket or
a token under ``except ValueError`` keeps catching them.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "AttestationError",
    "BrokerBusy",
    "BrokerError",
    "CchetError",
    "CertificateChainError",
    "CollateralError",
    "DeviceUnavailable",
    "EvidenceFormatError",
    "FetchError",
    "IntegrityError",
    "KernelRefused",
    "KeyReleaseDenied",
    "MeasurementMismatchError",
    "NonceMismatchError",
    "PlacementError",
    "PolicyViolation",
    "ProtocolError",
    "RayFailure",
    "RevocationError",
    "SealedFormatError",
    "SignatureError",
    "TcbError",
    "TicketError",
    "TokenError",
    "VerificationError",
]


class CchetError(Exception):
    """Root of every exception cchet raises deliberately."""


class IntegrityError(CchetError):
    """Sealed data could not be opened.

    Once the key has been used the message is always :data:`INTEGRITY_MESSAGE`, whatever went wrong
    (a tag, truncation, reordering, a wrong key or context), so the error is no oracle. No plaintext of
    the failed data has been handed over, and ``*_into`` destinations have been zeroed.
    """

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or INTEGRITY_MESSAGE)


INTEGRITY_MESSAGE = (
    "sealed data failed authentication: it was modified, truncated, reordered, or opened with the "
    "wrong key or context; no plaintext was released"
)


class SealedFormatError(IntegrityError):
    """The sealed stream is structurally invalid; found before any key was used.

    ``field`` names the header field (or ``"length"`` for the body's size) that is wrong.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"malformed sealed stream: {field}: {problem}")


class AttestationError(CchetError):
    """Base of everything that makes evidence untrustworthy."""


class EvidenceFormatError(AttestationError):
    """Evidence bytes do not parse. ``offset`` and ``field`` say where."""

    def __init__(self, message: str, *, offset: int | None = None, field: str | None = None) -> None:
        self.offset = offset
        self.field = field
        where = []
        if field is not None:
            where.append(field)
        if offset is not None:
            where.append(f"at offset {offset}")
        super().__init__(f"{' '.join(where)}: {message}" if where else message)


class VerificationError(AttestationError):
    """One or more independent verification checks failed; ``failures`` lists every one of them."""

    def __init__(self, failures: Iterable[str]) -> None:
        self.failures: tuple[str, ...] = tuple(failures)
        if not self.failures:
            raise ValueError("VerificationError needs at least one failure")
        super().__init__("; ".join(self.failures))


class SignatureError(VerificationError):
    """A signature over evidence (quote, QE report, SNP or SPDM report), collateral or a RIM does not verify,
    or the QE report does not bind the attestation key."""


class CertificateChainError(VerificationError):
    """A certificate chain is broken, outside its validity window, or does not end at a pinned vendor root."""


class RevocationError(VerificationError):
    """A certificate in a chain is listed on its issuer's CRL, or a CRL does not verify."""


class CollateralError(VerificationError):
    """Collateral (TCB info, QE identity, CRLs, AMD certificates, RIMs) is missing, expired, malformed, or
    issued for another platform."""


class FetchError(CollateralError):
    """A collateral service could not be reached, or answered with an error or a malformed body; the message
    has the URL. Collateral sources fall back to their cache when a fetch fails; when this reaches a verifier,
    the collateral is missing, hence a :class:`CollateralError`."""

    def __init__(self, message: str) -> None:
        super().__init__((message,))


class TcbError(VerificationError):
    """The platform TCB matches no level of the TCB info, is Revoked, or differs from the TCB the signing
    key was issued for."""


class NonceMismatchError(VerificationError):
    """The evidence answers a nonce other than the one the verifier expected."""


class MeasurementMismatchError(VerificationError):
    """A measured value differs from its reference: the FWID in the device certificate, RIM measurements,
    an event-log replay, or the quoting enclave's identity."""


class PolicyViolation(AttestationError):
    """Verified evidence does not satisfy the policy; ``violations`` lists every failed rule."""

    def __init__(self, violations: Iterable[str]) -> None:
        self.violations: tuple[str, ...] = tuple(violations)
        if not self.violations:
            raise ValueError("PolicyViolation needs at least one violation")
        super().__init__("; ".join(self.violations))


class KeyReleaseDenied(CchetError):
    """The key broker released nothing; ``reasons`` lists every reason."""

    def __init__(self, reasons: Iterable[str]) -> None:
        self.reasons: tuple[str, ...] = tuple(reasons)
        if not self.reasons:
            raise ValueError("KeyReleaseDenied needs at least one reason")
        super().__init__("key release denied: " + "; ".join(self.reasons))


class BrokerError(CchetError):
    """Key release failed without an authentic refusal: the broker could not be reached, answered with
    something unsigned, foreign or malformed, or is busy; or a protocol message, call ticket or token is
    malformed or does not verify (the subclasses).

    A worker that gets this has received no key. It is distinct from :class:`KeyReleaseDenied`, which is
    an authentic refusal.
    """


class ProtocolError(BrokerError, ValueError):
    """A key-release protocol message is malformed or oversized; the message names the field and what was
    expected (the limit, for an oversized field). Also a ``ValueError``: it reports malformed input."""


class TicketError(BrokerError, ValueError):
    """A call ticket is malformed or does not verify; the message says which check. Also a ``ValueError``."""


class TokenError(BrokerError, ValueError):
    """An attestation token failed verification; the message says which check. Also a ``ValueError``."""


class BrokerBusy(BrokerError):
    """The broker refuses new work for now: a client sent more messages than its rate limit allows, or too
    many challenges are outstanding. ``retry_after_s`` says when to try again; nothing was consumed."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (BrokerBusy, (str(self), self.retry_after_s))


class PlacementError(CchetError):
    """No attested node qualifies for the task, or Ray could not schedule it there."""


class RayFailure(CchetError):
    """Ray reported that a confidential task, actor or object failed (its worker or node died, the object was
    lost, ...). ``error_type`` is Ray's name for it; nothing of the failed object was read."""

    def __init__(self, error_type: str, message: str) -> None:
        self.error_type = error_type
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (RayFailure, (self.error_type, str(self)))


class DeviceUnavailable(CchetError):
    """The GPU path was requested but no usable GPU, driver or CuPy is present; the message names the fix."""


class KernelRefused(CchetError, RuntimeError):
    """The GPU kernel refused a launch (its status word is not zero): the schedule's geometry does not match
    the compiled kernels. A bug in how the launch was built, never an integrity verdict; nothing the launch
    wrote may be used. Also a ``RuntimeError``."""
