"""Which CPU TEE, if any, this process runs in: Intel TDX, AMD SEV-SNP or Intel SGX, from the guest
devices the kernel exposes. Presence of a device says the hardware interface is there; it proves
nothing to anyone else (that is attestation's job).

``root`` is injected so tests can point at a fake filesystem.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["TeeInfo", "detect_tee"]

# Guest interfaces, per kind (Linux: TDX guest driver, SEV guest driver, SGX in-kernel driver).
DEVICES = {
    "tdx": ("dev/tdx_guest", "dev/tdx-guest"),
    "snp": ("dev/sev-guest",),
    "sgx": ("dev/sgx_enclave", "dev/sgx/enclave"),
}
CONFIGFS_TSM = "sys/kernel/config/tsm/report"


@dataclass(frozen=True, slots=True)
class TeeInfo:
    """``kind`` is ``"tdx"``, ``"snp"``, ``"sgx"``, a TEE family's kind (:mod:`cchet.attest.tees`) or None;
    ``found`` lists the interfaces present."""

    kind: str | None
    found: tuple[str, ...]

    @property
    def detected(self) -> bool:
        return self.kind is not None


def detect_tee(root: Path = Path("/")) -> TeeInfo:
    """Look for CPU TEE guest interfaces under ``root``. Reads no device, only checks paths."""
    from cchet.attest.tees import tees

    devices = {**{t.kind: t.interfaces for t in tees()}, **DEVICES}  # a family's interface first
    found = list(dict.fromkeys(p for paths in devices.values() for p in paths if (root / p).exists()))
    if (root / CONFIGFS_TSM).is_dir():
        found.append(CONFIGFS_TSM)
    kind = next((k for k, paths in devices.items() if any(p in found for p in paths)), None)
    return TeeInfo(kind=kind, found=tuple("/" + f for f in found))
