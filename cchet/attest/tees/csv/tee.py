"""The ``csv`` kind as a :class:`cchet.attest.tees.Tee`: every method imports its module (and gmssl) on first use."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cchet.attest.tees import Fail

if TYPE_CHECKING:
    from cchet.attest.simulate.authority import SimulatedAuthority
    from cchet.attest.verify.options import TrustAnchor, VerifyOptions
    from cchet.attest.verify.verified import VerifiedDevice

__all__ = ["CsvTee"]


class CsvTee:
    """Hygon CSV (China Secure Virtualization) guests: V1 and V2 reports, SM2/SM3 chain to the Hygon Root Key."""

    kind = "csv"
    section = "csv"
    vendors = ("hygon",)
    interfaces = ("dev/csv-guest",)
    description = "Hygon CSV guest (report signed by the PEK; chain HRK -> HSK -> CEK -> PEK, SM2/SM3)"

    def detect(self, data: bytes) -> bool:
        """The 4116-byte report wrapper with a zero or ``ATTESTATION_EXT`` magic and flags 0 or 1, or trustee's
        evidence JSON (an object with ``attestation_report`` and ``cert_chain``)."""
        from cchet.attest.tees import json_object_keys
        from cchet.attest.tees.csv.report import MAGIC_EXT, MAGIC_ZERO, REPORT_SIZE

        keys = json_object_keys(data)
        if keys is not None:
            return {"attestation_report", "cert_chain"} <= keys
        flags = int.from_bytes(data[16:20], "little")
        return len(data) == REPORT_SIZE and (data[:16] == MAGIC_ZERO or (data[:16] == MAGIC_EXT and flags in (0, 1)))

    def parse(self, data: bytes) -> Any:
        """A :class:`~cchet.attest.tees.csv.report.CsvReport` from the binary wrapper, or a
        :class:`~cchet.attest.tees.csv.evidence.CsvEvidence` from trustee's JSON evidence document."""
        if bytes(data).lstrip()[:1] == b"{":
            from cchet.attest.tees.csv.evidence import parse_csv_evidence

            return parse_csv_evidence(data)
        from cchet.attest.tees.csv.report import parse_csv_report

        return parse_csv_report(data)

    def verify(
        self, report: Any, certificates: bytes, options: VerifyOptions, *, expected_report_data: bytes | None
    ) -> tuple[VerifiedDevice, list[str]]:
        from cchet.attest.tees.csv.verify import verify_csv_device

        return verify_csv_device(report, certificates, options, expected_report_data=expected_report_data)

    def claims(self, report: Any) -> dict[str, Any]:
        from cchet.attest.tees.csv.policy import claims

        return claims(report)

    def debug(self, report: Any) -> bool:
        from cchet.attest.tees.csv.policy import csv_report

        return csv_report(report).debug

    def check_section(self, section: Mapping[str, Any]) -> dict[str, Any]:
        from cchet.attest.tees.csv.policy import check_section

        return check_section(section)

    def pins(self, section: Mapping[str, Any]) -> bool:
        from cchet.attest.tees.csv.policy import pins

        return pins(section)

    def evaluate(self, report: Any, section: Mapping[str, Any], fail: Fail) -> None:
        from cchet.attest.tees.csv.policy import evaluate

        evaluate(report, section, fail)

    def reference(self, report: Any) -> dict[str, Any]:
        from cchet.attest.tees.csv.policy import reference

        return reference(report)

    def simulate(self, authority: SimulatedAuthority, *, report_data: bytes, **fields: Any) -> tuple[Any, bytes]:
        from cchet.attest.tees.csv.simulate import simulate_csv_report

        return simulate_csv_report(authority, report_data=report_data, **fields)

    def simulated_anchors(self, authority: SimulatedAuthority) -> tuple[TrustAnchor, ...]:
        from cchet.attest.tees.csv.simulate import SimulatedHygon

        return (SimulatedHygon.open(authority).anchor(),)

    def anchors_from_collateral(self, data: bytes) -> tuple[TrustAnchor, ...]:
        return ()  # the Hygon root is pinned; its certificates come with --certs or the collateral cache

    def local_attester(self, root: Path = Path("/")) -> Any:
        """A :class:`~cchet.attest.tees.csv.attester.CsvAttester` when ``/dev/csv-guest`` exists, else None
        (only the path is checked)."""
        if not (root / self.interfaces[0]).exists():
            return None
        from cchet.attest.tees.csv.attester import CsvAttester

        return CsvAttester(device=root / self.interfaces[0])
