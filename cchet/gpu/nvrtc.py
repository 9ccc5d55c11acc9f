"""A minimal ctypes binding of NVRTC (``libnvrtc``) to compile CUDA C++ to PTX without a GPU.

It exists for the compile gate: the kernels must compile under NVRTC, with the loader's exact options,
with an empty log. CuPy compiles through the same library at run time. The library comes from the
``nvidia-cuda-nvrtc`` wheel (``nvidia/cu13/lib``) or ``$CCHET_NVRTC``. NVRTC loads its builtins library
(``libnvrtc-builtins``) by name at compile time, so this module loads it first from the same folder.

Raises :class:`~cchet.DeviceUnavailable` when no NVRTC library is found.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cchet.errors import DeviceUnavailable

__all__ = ["CompileResult", "compile_to_ptx", "library_dir", "version"]

_ENV = "CCHET_NVRTC"


def library_dir() -> Path | None:
    """The folder holding ``libnvrtc.so.*``: ``$CCHET_NVRTC`` (a folder), else the wheel's; None if absent."""
    env = os.environ.get(_ENV)
    candidates = [Path(env)] if env else []
    spec = importlib.util.find_spec("nvidia")
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            candidates += sorted(Path(root).glob("cu*/lib"), reverse=True)
            candidates.append(Path(root) / "cuda_nvrtc" / "lib")
    for folder in candidates:
        if any(folder.glob("libnvrtc.so.*")):
            return folder
    return None


@cache
def _lib() -> ctypes.CDLL:
    folder = library_dir()
    if folder is None:
        raise DeviceUnavailable(
            "NVRTC not found: pip install 'nvidia-cuda-nvrtc==13.0.*' (cchet[dev]) or set CCHET_NVRTC "
            "to the folder holding libnvrtc.so"
        )
    for builtins in sorted(folder.glob("libnvrtc-builtins.so.*")):
        if ".alt." not in builtins.name:
            ctypes.CDLL(str(builtins), mode=ctypes.RTLD_GLOBAL)
            break
    main = next(p for p in sorted(folder.glob("libnvrtc.so.*")) if ".alt." not in p.name)
    lib = ctypes.CDLL(str(main))
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    return lib


def version() -> tuple[int, int]:
    """NVRTC's ``(major, minor)``."""
    major, minor = ctypes.c_int(), ctypes.c_int()
    _check(_lib().nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
    return major.value, minor.value


@dataclass(frozen=True, slots=True)
class CompileResult:
    """``ok`` is NVRTC's verdict; ``log`` its full log (empty when it said nothing); ``ptx`` if ok."""

    ok: bool
    log: str
    ptx: str


def _check(code: int, what: str) -> None:
    if code != 0:
        msg = _lib().nvrtcGetErrorString(code)
        raise RuntimeError(f"{what} failed: {msg.decode() if msg else code}")


def compile_to_ptx(source: str, name: str, options: tuple[str, ...]) -> CompileResult:
    """Compile ``source`` (``name`` in messages) with ``options``; a compile error is returned, not raised."""
    lib = _lib()
    prog = ctypes.c_void_p()
    _check(
        lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None),
        "nvrtcCreateProgram",
    )
    try:
        opts = (ctypes.c_char_p * len(options))(*(o.encode() for o in options))
        code = lib.nvrtcCompileProgram(prog, len(options), opts)
        size = ctypes.c_size_t()
        _check(lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size)), "nvrtcGetProgramLogSize")
        buf = ctypes.create_string_buffer(size.value)
        _check(lib.nvrtcGetProgramLog(prog, buf), "nvrtcGetProgramLog")
        log = buf.value.decode(errors="replace")
        ptx = ""
        if code == 0:
            _check(lib.nvrtcGetPTXSize(prog, ctypes.byref(size)), "nvrtcGetPTXSize")
            out = ctypes.create_string_buffer(size.value)
            _check(lib.nvrtcGetPTX(prog, out), "nvrtcGetPTX")
            ptx = out.value.decode()
        return CompileResult(ok=code == 0, log=log, ptx=ptx)
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))
