"""NVIDIA GPU evidence through NVML's confidential-computing calls, via :class:`cchet.platform.nvml.Nvml`.

For each GPU: the SPDM GET_MEASUREMENTS request and signed response over the caller's nonce, the attestation
certificate chain (leaf first) and the CC mode NVML reports (``on`` or ``devtools``), turned into
:class:`~cchet.attest.evidence.GpuEvidence`. The
NVML module is injected (``nvml=``, passed to :class:`~cchet.platform.nvml.Nvml`) so tests use a fake
serving real reports; by default ``pynvml`` is imported on first use, never when cchet is imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cchet.attest.evidence import GpuEvidence
from cchet.attest.formats.certchain import der_to_pem
from cchet.attest.formats.spdm import parse_spdm_report
from cchet.errors import AttestationError, DeviceUnavailable

__all__ = ["NvmlGpuAttester"]


class NvmlGpuAttester:
    """Collects SPDM reports from the GPUs NVML sees (or the ``indices`` given), in CC mode only."""

    def __init__(self, *, nvml: Any = None, indices: Sequence[int] | None = None) -> None:
        self._module = nvml
        self._indices = list(indices) if indices is not None else None

    def _session(self) -> Any:
        from cchet.platform.nvml import Nvml

        return Nvml(module=self._module)

    @staticmethod
    def _require_cc(nv: Any) -> None:
        state = nv.cc_state()
        if state is None or not state.enabled:
            raise DeviceUnavailable(
                "the GPUs are not in confidential-computing mode (enable CC mode with NVIDIA's tools and "
                "reboot the GPU); their memory is not protected and they cannot be attested"
            )

    def count(self) -> int:
        """How many GPUs will be attested. Raises :class:`DeviceUnavailable` without NVML or CC mode."""
        with self._session() as nv:
            self._require_cc(nv)
            return len(self._indices) if self._indices is not None else int(nv.gpu_count())

    def collect(self, nonces: Sequence[bytes]) -> list[GpuEvidence]:
        """One report per GPU, GPU ``i`` answering ``nonces[i]`` (32 bytes each).

        Raises ``ValueError`` for a wrong count or size, :class:`DeviceUnavailable` without NVML or CC mode,
        :class:`AttestationError` (a :class:`~cchet.errors.VerificationError`) when a report answers another
        nonce, and :class:`~cchet.errors.EvidenceFormatError` when it does not parse."""
        with self._session() as nv:
            self._require_cc(nv)
            state = nv.cc_state()
            cc_mode = "devtools" if state is not None and state.devtools else "on"
            indices = self._indices if self._indices is not None else list(range(int(nv.gpu_count())))
            if len(nonces) != len(indices):
                raise ValueError(f"{len(indices)} GPU(s) need {len(indices)} nonce(s), got {len(nonces)}")
            out = []
            for i, (device, nonce) in enumerate(zip(indices, nonces, strict=True)):
                raw = nv.attestation_report(device, bytes(nonce))
                report = parse_spdm_report(raw.report)
                if report.request.nonce != nonce:
                    raise AttestationError(f"GPU {device} answered another nonce")
                chain = b"".join(der_to_pem(der) for der in nv.certificate_chain(device).attestation)
                out.append(GpuEvidence(i, report, chain, cc_mode))
            return out
