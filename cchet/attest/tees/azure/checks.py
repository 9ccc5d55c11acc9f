"""The verification checks Azure vTPM evidence adds to those of the hardware report it carries (AMD SEV-SNP's
``amd.*`` checks, Intel DCAP's ``intel.*``); listed with the others in ``docs/verification-checks.md``.

They are kept as plain data and made :class:`~cchet.attest.verify.checks.Check` objects on request
(:func:`azure_checks`): :mod:`cchet.attest.verify.checks` reads every family's ``CHECKS`` while it is itself
being imported, so this module must not import it first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cchet.errors import (
    CertificateChainError,
    MeasurementMismatchError,
    NonceMismatchError,
    SignatureError,
    VerificationError,
)

if TYPE_CHECKING:
    from cchet.attest.verify.checks import Check

__all__ = ["SPECS", "azure_checks"]

SPECS: tuple[tuple[str, type[VerificationError], str], ...] = (
    (
        "azure.runtime_data",
        SignatureError,
        "the hardware report's report_data[0:32] (SNP report, or TD quote) = SHA-256(HCL runtime data)",
    ),
    (
        "azure.ak",
        CertificateChainError,
        "the runtime data holds exactly one vTPM attestation key (HCLAkPub JWK, RSA >= 2048 bits)",
    ),
    ("azure.quote_signature", SignatureError, "the TPM quote (TPMS_ATTEST) is signed by that AK (RSASSA, SHA-256)"),
    (
        "azure.pcr_digest",
        MeasurementMismatchError,
        "the quote selects one SHA-256 bank and its pcrDigest = SHA-256 of the PCR values given, in order",
    ),
    (
        "azure.td_report",
        MeasurementMismatchError,
        "az-tdx: the HCL report's TDREPORT equals the TD quote (report data, TD and TDX module measurements)",
    ),
    ("azure.nonce", NonceMismatchError, "the TPM quote's qualifying data (extraData) equals the expected nonce"),
)


def azure_checks() -> tuple[Check, ...]:
    """The checks of :data:`SPECS` as :class:`~cchet.attest.verify.checks.Check` objects."""
    from cchet.attest.verify.checks import Check

    return tuple(Check(check_id, error, description) for check_id, error, description in SPECS)
