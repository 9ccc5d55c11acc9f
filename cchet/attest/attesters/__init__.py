"""Collect evidence on this machine: configfs-tsm (TDX, SEV-SNP), Gramine (SGX), NVML (NVIDIA GPUs), and the
composite CPU + GPU attester that binds them (DESIGN.md section 4). Every device path and library is
injected; nothing is read at import time."""

from cchet.attest.attesters.base import CpuAttester, GpuAttester
from cchet.attest.attesters.composite import CompositeAttester
from cchet.attest.attesters.configfs_tsm import TsmAttester, snp_cert_table_to_pem
from cchet.attest.attesters.gramine import GramineAttester
from cchet.attest.attesters.local import local_attester
from cchet.attest.attesters.nvml import NvmlGpuAttester

__all__ = [
    "CompositeAttester",
    "CpuAttester",
    "GpuAttester",
    "GramineAttester",
    "NvmlGpuAttester",
    "TsmAttester",
    "local_attester",
    "snp_cert_table_to_pem",
]
