"""SGX evidence through Gramine's ``/dev/attestation`` pseudo-files.

Inside a Gramine enclave with DCAP remote attestation, writing 64 bytes to ``user_report_data`` and reading
``quote`` gives an SGX DCAP quote (v3) over them; ``attestation_type`` says ``dcap``. The directory is
injected; tests point it at a folder serving a real quote.
"""

from __future__ import annotations

from pathlib import Path

from cchet.attest.evidence import CpuEvidence
from cchet.attest.formats.dcap import parse_quote
from cchet.errors import AttestationError, DeviceUnavailable

__all__ = ["DEFAULT_DEVICE", "GramineAttester"]

DEFAULT_DEVICE = Path("/dev/attestation")


class GramineAttester:
    """Collects an SGX quote through Gramine's attestation pseudo-files under ``device``."""

    kind = "sgx"

    def __init__(self, device: Path = DEFAULT_DEVICE) -> None:
        self.device = Path(device)

    def collect(self, report_data: bytes) -> CpuEvidence:
        """Raises ``ValueError`` unless ``report_data`` is 64 bytes, :class:`DeviceUnavailable` outside a
        Gramine DCAP enclave, :class:`AttestationError` when the quote answers other report data,
        :class:`~cchet.errors.EvidenceFormatError` when the quote does not parse."""
        if len(report_data) != 64:
            raise ValueError("report_data must be exactly 64 bytes")
        kind_file = self.device / "attestation_type"
        if not kind_file.exists():
            raise DeviceUnavailable(
                f"no Gramine attestation interface at {self.device}: run inside a Gramine SGX enclave with "
                'sgx.remote_attestation = "dcap" (or use cchet.attest.simulate)'
            )
        attestation_type = kind_file.read_text().strip()
        if attestation_type != "dcap":
            raise DeviceUnavailable(f"Gramine attestation type is {attestation_type!r}; cchet needs 'dcap'")
        (self.device / "user_report_data").write_bytes(report_data)
        quote = parse_quote((self.device / "quote").read_bytes())
        if quote.kind != "sgx":
            raise AttestationError("Gramine returned a non-SGX quote")
        if quote.report_data != report_data:
            raise AttestationError("the SGX quote carries other report data than requested")
        return CpuEvidence(quote)
