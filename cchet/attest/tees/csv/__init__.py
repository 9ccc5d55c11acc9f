"""Hygon CSV (China Secure Virtualization): the ``csv`` TEE kind.

A CSV guest's report (V1, masked, or V2, extended with RTMRs) is signed by the chip's Platform Endorsement Key,
whose chain is PEK -> CEK (chip) -> HSK -> HRK (Hygon's root, pinned by fingerprint in
:mod:`cchet.attest.verify.roots`), every signature SM2 with SM3 and the signer's ID as the distinguishing ID
(via ``gmssl``). The report's 64-byte ``report_data`` carries cchet's binding transcript. See ``docs/tees/csv.md``.

Modules (imported on first use; this one imports nothing heavy): ``report`` (the report wrapper), ``certs``
(Hygon's certificate formats), ``evidence`` (trustee's JSON evidence document), ``sm2`` (SM2/SM3 on gmssl),
``verify``, ``collateral`` (HSK/CEK and HRK from the cache or a fetcher), ``policy`` (the ``csv`` table,
claims, reference values), ``simulate`` and ``attester`` (``/dev/csv-guest``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cchet.attest.tees.csv.tee import CsvTee

if TYPE_CHECKING:
    from cchet.attest.verify.checks import Check

__all__ = ["CHECKS", "TEES", "CsvTee"]

TEES = {"csv": CsvTee()}


def _checks() -> tuple[Check, ...]:
    from cchet.attest.verify.checks import Check
    from cchet.errors import CertificateChainError, CollateralError, NonceMismatchError, SignatureError

    return (
        Check(
            "csv.certificates_missing",
            CollateralError,
            "the chip's HSK and CEK (evidence, collateral cache or fetcher: Hygon KDS by serial) and the HRK are "
            "available",
        ),
        Check(
            "csv.chain",
            CertificateChainError,
            "HRK (pinned, self-signed) -> HSK -> CEK -> PEK: SM2/SM3 signatures with the signer's ID, key usages, ids",
        ),
        Check(
            "csv.report_signature",
            SignatureError,
            "report signed by its PEK (SM2/SM3, ID of the PEK) over the tee-info, sig_usage/sig_algo PEK/SM2",
        ),
        Check("csv.nonce", NonceMismatchError, "report data equals the expected nonce"),
    )


def __getattr__(name: str) -> tuple[Check, ...]:
    """``CHECKS`` is built on first access: :mod:`cchet.attest.verify.checks` (which defines ``Check``) imports this
    module to list every family's checks, so importing it here at module level would be circular."""
    if name == "CHECKS":
        checks = _checks()
        globals()["CHECKS"] = checks
        return checks
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
