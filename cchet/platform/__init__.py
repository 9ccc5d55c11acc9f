"""What this machine is: CPU TEE kind, NVIDIA GPUs and their confidential-computing state.

Importing this package reads nothing and imports neither pynvml nor CuPy; the probes run when called.

Public names (loaded on first use): :func:`probe` (what holds here, as ``cchet info`` prints it),
:class:`Nvml` (NVML CC state and evidence), :func:`detect_tee`, and the SIMULATED :class:`FakeNvml`.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["FakeNvml", "MachineInfo", "Nvml", "detect_tee", "probe"]

_WHERE = {
    "FakeNvml": "cchet.platform.fake_nvml",
    "MachineInfo": "cchet.platform.info",
    "Nvml": "cchet.platform.nvml",
    "detect_tee": "cchet.platform.tee",
    "probe": "cchet.platform.info",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'cchet.platform' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
