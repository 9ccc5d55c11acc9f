"""The one loader of cchet's CUDA kernels: sources as package data, ``#line`` directives, pinned options.

The CUDA sources live in the top-level ``kernels/`` folder; the wheel maps it to ``cchet/kernels`` and a
source checkout reads it in place. :func:`source` inlines each ``#include "x.cuh"`` with ``#line``
directives, so compiler messages name the real file and line; :func:`module` compiles the result with
CuPy's ``RawModule`` (NVRTC) and the pinned :data:`NVRTC_OPTIONS`, once per device (and per set of
compile-time ``defines``, :func:`define_options`); :func:`precompile` does it ahead of time (CuPy also
caches binaries on disk).

Raises :class:`~cchet.DeviceUnavailable` without CuPy or a GPU, and ``FileNotFoundError`` if the
kernels are missing from the install.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from cchet.gpu.runtime import require_device

__all__ = [
    "KERNEL_NAMES",
    "NVRTC_OPTIONS",
    "SOURCE",
    "define_options",
    "kernel_dir",
    "module",
    "precompile",
    "source",
]

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
_DEFINE = re.compile(r"CCHET_[A-Z0-9_]+")
_lock = threading.Lock()
_modules: dict[tuple[int, str, tuple[str, ...]], Any] = {}


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


def define_options(defines: Mapping[str, int] | None) -> tuple[str, ...]:
    """``-DNAME=VALUE`` options for compile-time knobs of the kernels, sorted by name.

    Names must be ``CCHET_`` identifiers and values ints (``ValueError``/``TypeError`` otherwise), so no
    other compiler option can ride along. The knobs: ``CCHET_MIN_BLOCKS_PER_SM`` (occupancy the kernels
    are built for) and ``CCHET_TABLE_LAYOUT_CONFLICT`` (1: the deliberately bank-conflicting T-table, the
    positive control of the per-key timing test; it leaks key bits through timing, never use it for data).
    """
    if not defines:
        return ()
    out = []
    for name in sorted(defines):
        value = defines[name]
        if not isinstance(name, str) or _DEFINE.fullmatch(name) is None:
            raise ValueError(f"kernel defines are CCHET_* identifiers, got {name!r}")
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"kernel define {name} must be an int, got {type(value).__name__}")
        out.append(f"-D{name}={value}")
    return tuple(out)


def module(device: int = 0, *, defines: Mapping[str, int] | None = None) -> Any:
    """The compiled ``cupy.RawModule`` for CUDA device ``device``, compiled once per device and set of
    ``defines`` (:func:`define_options`; default none, the production build) and cached.

    Raises :class:`~cchet.DeviceUnavailable` without CuPy or that device.
    """
    options = NVRTC_OPTIONS + define_options(defines)
    cp = require_device(device)
    code = source()
    key = (device, code, options)
    with _lock:
        mod = _modules.get(key)
        if mod is None:
            with cp.cuda.Device(device):
                mod = cp.RawModule(code=code, options=options, backend="nvrtc")
                for name in KERNEL_NAMES:
                    mod.get_function(name)  # compiles and loads now, not inside a timed transfer
            _modules[key] = mod
        return mod


def precompile(devices: list[int] | None = None, *, defines: Mapping[str, int] | None = None) -> list[int]:
    """Compile the kernels for ``devices`` (default: every visible GPU); returns the devices done."""
    cp = require_device(0)
    targets = list(range(int(cp.cuda.runtime.getDeviceCount()))) if devices is None else devices
    for d in targets:
        module(d, defines=defines)
    return targets
