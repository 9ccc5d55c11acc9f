"""CuPy, imported only when the GPU path is used, and the checks that a usable GPU is there.

Nothing here runs at import time. Every failure raises :class:`~cchet.DeviceUnavailable` naming the fix;
there is no CPU fallback that could pass for confidential GPU work.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from cchet.errors import DeviceUnavailable

__all__ = ["require_cupy", "require_device"]

INSTALL_HINT = "pip install 'cchet[gpu]' (CuPy for CUDA 13: cupy-cuda13x)"


def require_cupy() -> ModuleType:
    """The ``cupy`` module; :class:`~cchet.DeviceUnavailable` naming the install command when absent."""
    try:
        return importlib.import_module("cupy")
    except ImportError as e:
        raise DeviceUnavailable(f"the GPU path needs CuPy, which is not installed: {INSTALL_HINT}") from e
    except Exception as e:  # CuPy raises various errors when its CUDA libraries are broken
        raise DeviceUnavailable(f"CuPy failed to import ({e}); reinstall it: {INSTALL_HINT}") from e


def require_device(device: int) -> ModuleType:
    """``cupy`` after checking that CUDA device ``device`` exists; raises ``DeviceUnavailable`` otherwise."""
    if isinstance(device, bool) or not isinstance(device, int) or device < 0:
        raise ValueError(f"device must be a CUDA device index >= 0, got {device!r}")
    cp = require_cupy()
    try:
        count = int(cp.cuda.runtime.getDeviceCount())
    except Exception as e:
        raise DeviceUnavailable(
            f"no usable NVIDIA GPU: the CUDA driver reports {e}; check `nvidia-smi` and the driver install"
        ) from e
    if device >= count:
        raise DeviceUnavailable(
            f"CUDA device {device} does not exist ({count} visible): check CUDA_VISIBLE_DEVICES, `nvidia-smi`"
        )
    return cp
