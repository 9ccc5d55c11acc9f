"""The attester for this machine: whichever TEE interface is present, plus its GPUs in CC mode.

Detection order: each TEE family's interface (an Azure CVM's vTPM, a Hygon CSV guest, an Arm CCA realm:
:mod:`cchet.attest.tees`), then configfs-tsm (TDX or SEV-SNP guest), then Gramine's ``/dev/attestation`` (SGX
enclave).
GPUs are attested through NVML when it reports confidential-computing mode; a machine whose GPUs are not in
CC mode gets CPU-only evidence, and a policy with ``gpu="required"`` then refuses it (nothing is claimed for
those GPUs). With no TEE interface at all, :class:`~cchet.errors.DeviceUnavailable` says how to simulate.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cchet.attest.attesters.base import CpuAttester, GpuAttester
from cchet.attest.attesters.composite import CompositeAttester
from cchet.attest.attesters.configfs_tsm import DEFAULT_TSM_ROOT, TsmAttester
from cchet.attest.attesters.gramine import DEFAULT_DEVICE, GramineAttester
from cchet.attest.attesters.nvml import NvmlGpuAttester
from cchet.errors import DeviceUnavailable

__all__ = ["local_attester"]

log = logging.getLogger("cchet.attest.attesters")


def local_attester(
    *,
    tsm_root: Path = DEFAULT_TSM_ROOT,
    gramine_device: Path = DEFAULT_DEVICE,
    gpus: GpuAttester | bool | None = True,
) -> CompositeAttester:
    """A :class:`CompositeAttester` for this machine. ``gpus``: True to detect NVML CC GPUs, False for none,
    or a GPU attester to use. Raises :class:`DeviceUnavailable` when no TEE interface is present."""
    from cchet.attest.tees import tees

    cpu: CpuAttester
    family = next((a for a in (t.local_attester() for t in tees()) if a is not None), None)
    if family is not None:
        cpu = family
    elif Path(tsm_root).is_dir():
        cpu = TsmAttester(Path(tsm_root))
    elif (Path(gramine_device) / "attestation_type").exists():
        cpu = GramineAttester(Path(gramine_device))
    else:
        raise DeviceUnavailable(
            f"no TEE attestation interface here (neither configfs-tsm at {tsm_root} nor Gramine's "
            f"{gramine_device}); for a SIMULATED TEE use cchet.init(simulate='tdx') or cchet.attest.simulate"
        )
    gpu: GpuAttester | None
    if gpus is True:
        candidate = NvmlGpuAttester()
        try:
            gpu = candidate if candidate.count() > 0 else None
        except DeviceUnavailable as e:
            log.info("no GPU evidence: %s", e)
            gpu = None
    elif gpus is False or gpus is None:
        gpu = None
    else:
        gpu = gpus
    return CompositeAttester(cpu, gpu)
