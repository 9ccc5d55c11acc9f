"""A SIMULATED attester: what a worker on a simulated TEE uses to answer the broker's challenge.

SIMULATED EVIDENCE PROTECTS NOTHING. It produces real-format evidence signed by the simulator's keys
(:class:`~cchet.attest.simulate.authority.SimulatedAuthority`), bound to the broker's nonce and binding
exactly as real evidence is, so the broker runs its real appraisal on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cchet.attest.binding import Binding
from cchet.attest.evidence import CompositeEvidence
from cchet.attest.simulate.authority import SimulatedAuthority
from cchet.attest.simulate.composite import CPU_KINDS, simulate_composite

__all__ = ["SimulatedAttester", "parse_kind"]


def parse_kind(spec: str) -> tuple[str, int]:
    """``"tdx"``, ``"snp+gpu"``, ``"sgx+2gpu"`` -> (CPU kind, GPU count). ``ValueError`` names the forms."""
    cpu, _, gpu = spec.partition("+")
    if cpu not in CPU_KINDS or (gpu and not gpu.endswith("gpu")):
        raise ValueError(
            f"simulated TEE kind {spec!r}: expected one of {', '.join(CPU_KINDS)}, optionally with '+gpu' "
            "or '+Ngpu' (e.g. 'tdx+gpu')"
        )
    count = gpu[: -len("gpu")]
    if gpu and count and not count.isdigit():
        raise ValueError(f"simulated TEE kind {spec!r}: the GPU count must be a number, as in 'tdx+2gpu'")
    return cpu, (int(count) if count else 1) if gpu else 0


@dataclass
class SimulatedAttester:
    """Collects SIMULATED composite evidence for a ``tee_kind`` CPU with ``gpu_count`` GPUs.

    ``cpu`` and ``gpu`` override simulated measurements and fields (see :func:`simulate_composite`).
    """

    authority: SimulatedAuthority
    tee_kind: str
    gpu_count: int = 0
    cpu: Mapping[str, Any] = field(default_factory=dict)
    gpu: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def for_kind(cls, spec: str, key_dir: str | None = None, **overrides: Any) -> SimulatedAttester:
        kind, gpus = parse_kind(spec)
        return cls(SimulatedAuthority.open(key_dir), kind, gpus, **overrides)

    def collect(self, nonce: bytes, binding: Binding | None) -> CompositeEvidence:
        """SIMULATED evidence bound to ``nonce`` and ``binding`` (DESIGN.md section 4). With ``binding``
        None the evidence is unbound (report data all zero): good for reading reference values only."""
        if binding is None:
            return simulate_composite(
                self.authority,
                self.tee_kind,
                report_data=bytes(64),
                gpus=self.gpu_count,
                cpu=self.cpu,
                gpu=self.gpu,
            )
        return simulate_composite(
            self.authority,
            self.tee_kind,
            nonce=nonce,
            binding=binding,
            gpus=self.gpu_count,
            cpu=self.cpu,
            gpu=self.gpu,
        )
