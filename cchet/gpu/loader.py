"""The one loader of cchet's CUDA kernels: sources as package data, ``#line`` directives, pinned options.

The CUDA sources live in the top-level ``kernels/`` folder; the wheel maps it to ``cchet/kernels`` and a
source checkout reads it in place. :func:`source` inlines each ``#include "x.cuh"`` with ``#line``
directives, so compiler messages name the real file and line; :func:`module` compiles the result with
CuPy's ``RawModule`` (NVRTC) and the pinned :data:`NVRTC_OPTIONS`, once per device; :func:`precompile`
does it ahead of time (CuPy also caches binaries on disk).

Raises :class:`~cchet.DeviceUnavailable` without CuPy or a GPU, and ``FileNotFoundError`` if the
kernels are missing from the install.
"""

from __future__ import annotations

import re
import threading
from importlib import resources
from pathlib import Path
from typing import Any

from cchet.gpu.runtime import require_device

__all__ = ["KERNEL_NAMES", "NVRTC_OPTIONS", "SOURCE", "kernel_dir", "module", "precompile", "source"]

SOURCE = "aes_gcm.cu"
# The language standard is pinned; CuPy adds the target architecture of the device it compiles for.
NVRTC_OPTIONS: tuple[str, ...] = ("--std=c++17",)
KERNEL_NAMES = (
    "cchet_gcm_seal_segments",
    "cchet_gcm_open_segments",
    "cchet_gcm_seal_finish",
    "cchet_gcm_open_finish",
)

_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"\s*$')
_lock = threading.Lock()
_modules: dict[tuple[int, str], Any] = {}


def kernel_dir() -> Path:
    """Where the ``.cu``/``.cuh`` files are: the installed package data, else the source checkout's."""
    packaged = resources.files("cchet") / "kernels"
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[2] / "kernels"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(
        "cchet's CUDA kernels are missing: reinstall cchet (the wheel carries cchet/kernels) or run from a "
        "source checkout with its kernels/ folder"
    )


def source(name: str = SOURCE) -> str:
    """The translation unit ``name`` with its quoted includes inlined once each, under ``#line`` markers."""
    folder = kernel_dir()
    seen: set[str] = set()

    def expand(file: str) -> list[str]:
        out = [f'#line 1 "{file}"']
        for number, line in enumerate((folder / file).read_text().splitlines(), start=1):
            m = _INCLUDE.match(line)
            if m is None:
                out.append(line)
                continue
            inc = m.group(1)
            if inc not in seen:
                seen.add(inc)
                out += expand(inc)
            out.append(f'#line {number + 1} "{file}"')
        return out

    seen.add(name)
    return "\n".join(expand(name)) + "\n"


def module(device: int = 0) -> Any:
    """The compiled ``cupy.RawModule`` for CUDA device ``device``, compiled once and cached.

    Raises :class:`~cchet.DeviceUnavailable` without CuPy or that device.
    """
    cp = require_device(device)
    code = source()
    key = (device, code)
    with _lock:
        mod = _modules.get(key)
        if mod is None:
            with cp.cuda.Device(device):
                mod = cp.RawModule(code=code, options=NVRTC_OPTIONS, backend="nvrtc")
                for name in KERNEL_NAMES:
                    mod.get_function(name)  # compiles and loads now, not inside a timed transfer
            _modules[key] = mod
        return mod


def precompile(devices: list[int] | None = None) -> list[int]:
    """Compile the kernels for ``devices`` (default: every visible GPU); returns the devices done."""
    cp = require_device(0)
    targets = list(range(int(cp.cuda.runtime.getDeviceCount()))) if devices is None else devices
    for d in targets:
        module(d)
    return targets
