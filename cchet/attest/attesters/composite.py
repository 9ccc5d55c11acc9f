"""Composite CPU + GPU evidence with the binding of DESIGN.md section 4.

Order matters and is fixed: GPU ``i`` answers ``gpu_nonce(nonce, i)`` first; the CPU report data is then the
transcript over the broker's binding, the nonce and those GPU reports, so the CPU quote (signed by the TEE)
vouches for exactly these GPU reports, this broker, this request and this worker key.
"""

from __future__ import annotations

from cchet.attest.attesters.base import CpuAttester, GpuAttester
from cchet.attest.binding import Binding, compute_report_data, gpu_nonce
from cchet.attest.evidence import CompositeEvidence, gpu_transcripts

__all__ = ["CompositeAttester"]


class CompositeAttester:
    """A CPU attester and, optionally, a GPU attester, collecting bound composite evidence."""

    def __init__(self, cpu: CpuAttester, gpus: GpuAttester | None = None) -> None:
        self.cpu = cpu
        self.gpus = gpus

    @property
    def tee_kind(self) -> str:
        """The CPU TEE kind (probing the device once when the attester has not seen it yet)."""
        if self.cpu.kind == "unknown" and hasattr(self.cpu, "probe"):
            self.cpu.probe()
        return self.cpu.kind

    @property
    def gpu_count(self) -> int:
        return self.gpus.count() if self.gpus is not None else 0

    def collect(self, nonce: bytes, binding: Binding) -> CompositeEvidence:
        """Collects the GPU reports, then the CPU report bound to them. Raises ``ValueError`` for a nonce that
        is not 32 bytes, and whatever the attesters raise (:class:`~cchet.errors.DeviceUnavailable`,
        :class:`~cchet.errors.AttestationError`)."""
        if len(nonce) != 32:
            raise ValueError("nonce must be exactly 32 bytes")
        gpus = []
        if self.gpus is not None:
            n = self.gpus.count()
            gpus = self.gpus.collect([gpu_nonce(nonce, i) for i in range(n)])
        report_data = compute_report_data(binding, nonce, gpu_transcripts(gpus))
        return CompositeEvidence(self.cpu.collect(report_data), tuple(gpus))
