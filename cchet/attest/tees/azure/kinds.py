"""The two Azure kinds as :class:`~cchet.attest.tees.Tee` objects: ``az-snp`` and ``az-tdx``.

This module imports nothing beyond the standard library: the parsers, verifiers and simulator of the family
load on first use (``cchet.attest.verify.checks`` imports the family package to list its checks).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cchet.attest.simulate.authority import SimulatedAuthority
    from cchet.attest.tees import Fail
    from cchet.attest.tees.azure.report import AzureVtpmReport
    from cchet.attest.verify.options import TrustAnchor, VerifyOptions
    from cchet.attest.verify.verified import VerifiedDevice

__all__ = ["INTERFACE_PATHS", "AzureTee", "interface_present"]

_MAGIC = b"AZVT"
_REPORT_TYPE_AT = 8 + 4 + 0x4C8  # the HCL report's IGVM report_type inside the binary container
INTERFACE_PATHS = ("dev/tpmrm0", "sys/bus/vmbus")
"""A Hyper-V guest (VMBus) with a TPM: where an Azure confidential VM's vTPM is. Paths alone cannot tell a
confidential VM from another Hyper-V VM with a vTPM, nor SEV-SNP from TDX: the HCL report says, when the
attester reads it (its ``probe``)."""
_ROOT = Path("/")


def interface_present(root: Path = _ROOT) -> bool:
    """Whether both :data:`INTERFACE_PATHS` exist under ``root``. Checks paths only."""
    return all((root / p).exists() for p in INTERFACE_PATHS)


class AzureTee:
    """An Azure confidential VM kind: ``az-snp`` (HCL report type 2) or ``az-tdx`` (type 4)."""

    def __init__(self, kind: str, report_type: int, vendor: str, description: str) -> None:
        self.kind = kind
        self.section = kind.replace("-", "_")
        self.vendors = (vendor,)
        self.interfaces = ("sys/bus/vmbus",)  # what cchet info shows; the attester needs the TPM too
        self.description = description
        self._report_type = report_type

    def __repr__(self) -> str:
        return f"AzureTee({self.kind!r})"

    def detect(self, data: bytes) -> bool:
        """cchet's binary container with this kind's HCL report type, or trustee's evidence JSON (version 0 or
        1) whose HCL report is of this kind (the JSON is parsed to read it)."""
        from cchet.attest.tees import json_object_keys

        keys = json_object_keys(data)
        if keys is not None:
            if not keys & {"hcl_report", "report"}:
                return False
            from cchet.attest.tees.azure.report import parse_azure_report
            from cchet.errors import EvidenceFormatError

            try:
                return parse_azure_report(data).kind == self.kind
            except EvidenceFormatError:
                return False
        at = _REPORT_TYPE_AT
        return data[:4] == _MAGIC and data[at : at + 4] == self._report_type.to_bytes(4, "little")

    def parse(self, data: bytes) -> AzureVtpmReport:
        from cchet.attest.tees.azure.report import parse_azure_report

        return parse_azure_report(data, self.kind)

    def verify(
        self, report: Any, certificates: bytes, options: VerifyOptions, *, expected_report_data: bytes | None
    ) -> tuple[VerifiedDevice, list[str]]:
        from cchet.attest.tees.azure.verify import verify_azure_device

        return verify_azure_device(report, certificates, options, expected_report_data=expected_report_data)

    def claims(self, report: Any) -> dict[str, Any]:
        from cchet.attest.tees.azure.rules import claims

        return claims(report)

    def debug(self, report: Any) -> bool:
        return bool(report.debug)

    def check_section(self, section: Mapping[str, Any]) -> dict[str, Any]:
        from cchet.attest.tees.azure.rules import check_section

        return check_section(self.section, section)

    def pins(self, section: Mapping[str, Any]) -> bool:
        from cchet.attest.tees.azure.rules import pins

        return pins(self.section, section)

    def evaluate(self, report: Any, section: Mapping[str, Any], fail: Fail) -> None:
        from cchet.attest.tees.azure.rules import evaluate

        evaluate(report, self.section, section, fail)

    def reference(self, report: Any) -> dict[str, Any]:
        from cchet.attest.tees.azure.rules import reference

        return reference(report)

    def simulate(self, authority: SimulatedAuthority, *, report_data: bytes, **fields: Any) -> tuple[Any, bytes]:
        from cchet.attest.tees.azure.simulate import simulate_azure_report

        return simulate_azure_report(authority, self.kind, report_data=report_data, **fields)

    def simulated_anchors(self, authority: SimulatedAuthority) -> tuple[TrustAnchor, ...]:
        return ()  # the hardware reports chain to the authority's own simulated AMD and Intel roots

    def anchors_from_collateral(self, data: bytes) -> tuple[TrustAnchor, ...]:
        return ()  # the AMD and Intel roots are pinned; their collateral is the vendors' (cchet collateral fetch)

    def local_attester(self) -> Any:
        if not interface_present(_ROOT):
            return None
        from cchet.attest.tees.azure.attester import AzureVtpmAttester

        return AzureVtpmAttester()
