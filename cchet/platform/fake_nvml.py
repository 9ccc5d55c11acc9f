"""A SIMULATED NVML for tests: the subset of ``pynvml`` that :class:`~cchet.platform.nvml.Nvml` calls,
serving recorded NVIDIA evidence (a real SPDM attestation report and certificate chain, from files).

It is never used implicitly: pass it as ``Nvml(module=FakeNvml(...))``. A recorded report carries the
nonce it was made with, so asking for a report over any other nonce returns that same recorded report,
which a caller must reject (:meth:`cchet.platform.nvml.Nvml.attestation_report` does). GPU names end in
"(SIMULATED)".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

__all__ = ["FakeNvml", "FakeGpu"]


class NVMLError(Exception):
    """Stands for ``pynvml.NVMLError``."""


@dataclass
class FakeGpu:
    """One simulated GPU; ``report`` is the raw SPDM request + response, ``cert_chain`` PEM text."""

    name: str = "NVIDIA H100 80GB HBM3 (SIMULATED)"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    report: bytes = b""
    cert_chain: bytes = b""
    protected_kib: int = 0
    unprotected_kib: int = 80 * 1024 * 1024


@dataclass
class FakeNvml:
    """SIMULATED ``pynvml``. ``cc_enabled``/``ready``/``supports_cc`` set what NVML would report;
    ``available=False`` behaves like a machine without the NVIDIA driver."""

    gpus: list[FakeGpu] = field(default_factory=list)
    cc_enabled: bool = False
    ready: bool = False
    supports_cc: bool = True
    available: bool = True
    driver: str = "580.159.03"
    attacker_advantage: int = 60
    initialised: int = 0
    NVMLError: type[Exception] = NVMLError

    @classmethod
    def from_evidence(
        cls,
        report_hex: Path,
        cert_chain_pem: Path,
        *,
        count: int = 1,
        cc_enabled: bool = True,
        ready: bool = True,
    ) -> FakeNvml:
        """GPUs serving the recorded report (hex text) and certificate chain (PEM) of NVIDIA's fixtures."""
        report = bytes.fromhex(report_hex.read_text().strip())
        chain = cert_chain_pem.read_bytes()
        gpus = [
            FakeGpu(
                uuid=f"GPU-00000000-0000-0000-0000-{i:012d}",
                report=report,
                cert_chain=chain,
                protected_kib=78 * 1024 * 1024 if cc_enabled else 0,
                unprotected_kib=2 * 1024 * 1024 if cc_enabled else 80 * 1024 * 1024,
            )
            for i in range(count)
        ]
        return cls(gpus=gpus, cc_enabled=cc_enabled, ready=ready)

    # -- the pynvml surface ------------------------------------------------------------------------

    def nvmlInit(self) -> None:
        if not self.available:
            raise NVMLError("NVML Shared Library Not Found (SIMULATED)")
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self.initialised -= 1

    def _cc(self) -> None:
        if not self.supports_cc:
            raise NVMLError("Not Supported (SIMULATED)")

    def nvmlSystemGetDriverVersion(self) -> str:
        return self.driver

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        return self.gpus[index]

    def nvmlDeviceGetName(self, gpu: FakeGpu) -> str:
        return gpu.name

    def nvmlDeviceGetUUID(self, gpu: FakeGpu) -> str:
        return gpu.uuid

    def nvmlSystemGetConfComputeState(self) -> SimpleNamespace:
        self._cc()
        return SimpleNamespace(environment=2, ccFeature=int(self.cc_enabled), devToolsMode=0)

    def nvmlSystemGetConfComputeCapabilities(self) -> SimpleNamespace:
        self._cc()
        return SimpleNamespace(cpuCaps=2, gpusCaps=1)

    def nvmlSystemGetConfComputeGpusReadyState(self) -> int:
        self._cc()
        return int(self.ready)

    def nvmlDeviceGetConfComputeMemSizeInfo(self, gpu: FakeGpu) -> SimpleNamespace:
        self._cc()
        return SimpleNamespace(protectedMemSizeKib=gpu.protected_kib, unprotectedMemSizeKib=gpu.unprotected_kib)

    def nvmlSystemGetConfComputeKeyRotationThresholdInfo(self) -> SimpleNamespace:
        self._cc()
        return SimpleNamespace(version=0x1000010, attackerAdvantage=self.attacker_advantage)

    def nvmlDeviceGetConfComputeGpuAttestationReport(self, gpu: FakeGpu, nonce: bytes) -> SimpleNamespace:
        self._cc()
        if not self.cc_enabled:
            raise NVMLError("Not Supported: CC mode is off (SIMULATED)")
        return SimpleNamespace(
            isCecAttestationReportPresent=0,
            attestationReportSize=len(gpu.report),
            cecAttestationReportSize=0,
            nonce=bytes(nonce),
            attestationReport=gpu.report + bytes(0x2000 - len(gpu.report)),
            cecAttestationReport=bytes(0x1000),
        )

    def nvmlDeviceGetConfComputeGpuCertificate(self, gpu: FakeGpu) -> SimpleNamespace:
        self._cc()
        return SimpleNamespace(
            certChainSize=0,
            attestationCertChainSize=len(gpu.cert_chain),
            certChain=bytes(0x1000),
            attestationCertChain=gpu.cert_chain + bytes(0x1400 - len(gpu.cert_chain)),
        )
