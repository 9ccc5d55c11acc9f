"""Arm CCA: a realm's attestation token -- the CCA platform token signed by the platform's CPAK and the realm
token signed by the realm attestation key (RAK) the platform token binds -- as TEE kind ``cca``.

:data:`TEES` holds the kind (:class:`~cchet.attest.tees.cca.tee.CcaTee`), :data:`CHECKS` its verification
checks. Importing this package loads nothing else: the token format (cbor2), COSE signatures
(``cryptography``), endorsements, policy table, simulator and attester are submodules loaded on first use.
``CHECKS`` is built when first read, because :mod:`cchet.attest.verify.checks` (which defines ``Check``)
reads it while it is itself being imported. See docs/tees/cca.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cchet.attest.tees.cca.tee import CcaTee

if TYPE_CHECKING:
    from cchet.attest.tees import Tee
    from cchet.attest.verify.checks import Check

__all__ = ["CHECKS", "TEES"]

TEES: dict[str, Tee] = {"cca": CcaTee()}


def _checks() -> tuple[Check, ...]:
    from cchet.attest.verify.checks import Check  # defined before verify.checks reads this (see above)
    from cchet.errors import CertificateChainError, NonceMismatchError, SignatureError

    return (
        Check(
            "cca.chain",
            CertificateChainError,
            "the platform's CPAK is an Arm CCA trust anchor (vendor arm-cca) endorsing its instance-id and "
            "implementation-id",
        ),
        Check("cca.platform_signature", SignatureError, "platform token COSE_Sign1 (ES384, r || s) by that CPAK"),
        Check("cca.realm_signature", SignatureError, "realm token COSE_Sign1 by the RAK it carries (claim 44237)"),
        Check(
            "cca.rak_binding",
            SignatureError,
            "platform challenge = hash of the realm's RAK claim (algorithm of realm claim 44240)",
        ),
        Check("cca.nonce", NonceMismatchError, "realm challenge equals the expected report data"),
    )


def __getattr__(name: str) -> Any:
    if name == "CHECKS":
        checks = globals()["CHECKS"] = _checks()  # built once; a read during verify.checks' import builds it too
        return checks
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
