"""Azure confidential VMs (SEV-SNP and TDX behind Azure's paravisor) attested through their vTPM: kinds
``az-snp`` and ``az-tdx`` (docs/tees/azure.md).

Evidence: the HCL report (:mod:`.hcl`: the SEV-SNP report, or the TDREPORT with the TD quote Azure made for it,
and the runtime data holding the vTPM's attestation key), the vTPM's quote over the PCRs (:mod:`.tpm`) signed
by that key with cchet's report data as its qualifying data, and the PCR values (:mod:`.report`). Verification
(:mod:`.verify`) chains hardware report -> vendor root, report data -> runtime data -> attestation key -> quote
signature, quote -> PCR values. Policy tables ``az_snp`` and ``az_tdx`` (:mod:`.rules`); the SIMULATED form
(:mod:`.simulate`) and the attester inside a real VM (:mod:`.attester`, tpm2-tools).

Importing this package loads only the :class:`~cchet.attest.tees.Tee` objects. ``CHECKS`` (the family's
verification checks, :mod:`.checks`) is made on first access: :mod:`cchet.attest.verify.checks`, which defines
``Check``, itself reads every family's ``CHECKS`` while it is being imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cchet.attest.tees.azure.kinds import AzureTee

if TYPE_CHECKING:
    from cchet.attest.verify.checks import Check

    CHECKS: tuple[Check, ...]

__all__ = ["CHECKS", "TEES"]

TEES: dict[str, AzureTee] = {
    "az-snp": AzureTee("az-snp", 2, "amd", "Azure confidential VM on AMD SEV-SNP, attested through its vTPM"),
    "az-tdx": AzureTee("az-tdx", 4, "intel", "Azure confidential VM on Intel TDX, attested through its vTPM"),
}


def __getattr__(name: str) -> Any:
    if name == "CHECKS":
        from cchet.attest.tees.azure.checks import azure_checks

        checks = azure_checks()
        globals()["CHECKS"] = checks
        return checks
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
