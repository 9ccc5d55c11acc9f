"""NVIDIA GPU evidence through NVML's confidential-computing calls (``pynvml``).

For each GPU: ``nvmlDeviceGetConfComputeGpuAttestationReport(handle, nonce)`` gives the SPDM
GET_MEASUREMENTS request and signed response in a fixed-size buffer (the trailing padding is kept by the
parser), and ``nvmlDeviceGetConfComputeGpuCertificate(handle)`` the device certificate chain (PEM). The NVML
module is injected (``nvml=``) so tests use a fake serving real reports; by default ``pynvml`` is imported on
first use, never when cchet is imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cchet.attest.evidence import GpuEvidence
from cchet.attest.formats.spdm import parse_spdm_report
from cchet.errors import AttestationError, DeviceUnavailable

__all__ = ["NvmlGpuAttester"]

CC_FEATURE_ENABLED = 1


class NvmlGpuAttester:
    """Collects SPDM reports from the GPUs NVML sees (or the ``indices`` given), in CC mode only."""

    def __init__(self, *, nvml: Any = None, indices: Sequence[int] | None = None) -> None:
        self._nvml = nvml
        self._indices = list(indices) if indices is not None else None
        self._ready = False

    def _lib(self) -> Any:
        if self._nvml is None:
            try:
                import pynvml
            except ImportError:
                raise DeviceUnavailable("pynvml is not installed: pip install nvidia-ml-py") from None
            self._nvml = pynvml
        if not self._ready:
            nvml = self._nvml
            try:
                nvml.nvmlInit()
            except Exception as e:
                raise DeviceUnavailable(
                    f"NVML did not initialise ({e}): is the NVIDIA driver loaded?"
                ) from None
            state = nvml.nvmlSystemGetConfComputeState()
            if getattr(state, "ccFeature", 0) != CC_FEATURE_ENABLED:
                raise DeviceUnavailable(
                    "the GPUs are not in confidential-computing mode (nvidia-smi conf-compute -srs 1 and the "
                    "CC mode setting); their memory is not protected"
                )
            self._ready = True
        return self._nvml

    def count(self) -> int:
        """How many GPUs will be attested."""
        nvml = self._lib()
        return len(self._indices) if self._indices is not None else int(nvml.nvmlDeviceGetCount())

    def collect(self, nonces: Sequence[bytes]) -> list[GpuEvidence]:
        """One report per GPU, GPU ``i`` answering ``nonces[i]`` (32 bytes each).

        Raises ``ValueError`` for a wrong count or size, :class:`DeviceUnavailable` without NVML or CC mode,
        :class:`AttestationError` when a report answers another nonce, and
        :class:`~cchet.errors.EvidenceFormatError` when it does not parse."""
        nvml = self._lib()
        indices = self._indices if self._indices is not None else list(range(int(nvml.nvmlDeviceGetCount())))
        if len(nonces) != len(indices):
            raise ValueError(f"{len(indices)} GPU(s) need {len(indices)} nonce(s), got {len(nonces)}")
        out = []
        for i, (device_index, nonce) in enumerate(zip(indices, nonces, strict=True)):
            if len(nonce) != 32:
                raise ValueError("each SPDM nonce must be exactly 32 bytes")
            handle = nvml.nvmlDeviceGetHandleByIndex(device_index)
            raw_report = nvml.nvmlDeviceGetConfComputeGpuAttestationReport(handle, nonce)
            size = int(getattr(raw_report, "attestationReportSize", 0))
            buffer = bytes(raw_report.attestationReport)
            report = parse_spdm_report(buffer[:size] if size else buffer)
            if report.request.nonce != nonce:
                raise AttestationError(f"GPU {device_index} answered another nonce")
            cert = nvml.nvmlDeviceGetConfComputeGpuCertificate(handle)
            chain = bytes(cert.attestationCertChain)[: int(cert.attestationCertChainSize)]
            out.append(GpuEvidence(i, report, chain))
        return out
