"""What an attester is: something that collects evidence on this machine for given report data or nonces.

CPU attesters take the 64 bytes of report data the binding computed and return
:class:`~cchet.attest.evidence.CpuEvidence`; GPU attesters take one 32-byte SPDM nonce per GPU and return
:class:`~cchet.attest.evidence.GpuEvidence`. :class:`~cchet.attest.attesters.composite.CompositeAttester`
puts them together with the binding of DESIGN.md section 4. Attesters only collect; they trust nothing they
read (the broker verifies), but they do refuse evidence that plainly answers another question (a quote
whose report data is not the one asked for), since sending it could only fail.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from cchet.attest.evidence import CpuEvidence, GpuEvidence

__all__ = ["CpuAttester", "GpuAttester"]


class CpuAttester(Protocol):
    """Collects CPU TEE evidence whose report data is exactly ``report_data`` (64 bytes)."""

    kind: str

    def collect(self, report_data: bytes) -> CpuEvidence: ...


class GpuAttester(Protocol):
    """Collects one GPU report per nonce, GPU ``i`` answering ``nonces[i]``."""

    def count(self) -> int: ...

    def collect(self, nonces: Sequence[bytes]) -> list[GpuEvidence]: ...
