"""A SIMULATED CuPy for tests: just the parts cchet.gpu.cuda_device uses, on the CPU.

Device memory is numpy memory (``.data.ptr`` is its real address, so ``memcpyAsync``/``memsetAsync``
move real bytes); streams run everything at once, so events are always done; ``RawModule`` launches
the kernels of ``kernels/aes_gcm.cu`` through the CPU emulation built as a shared library
(``emulator/launch_lib.cpp``), after checking every argument's type against the kernel's signature. It
tests cchet's CuPy glue (argument order and types, slicing, copies, verdicts), not CuPy or a GPU.
"""

from __future__ import annotations

import ctypes
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np

uint8 = np.uint8
uint32 = np.uint32


class _Pointer:
    def __init__(self, ptr: int) -> None:
        self.ptr = ptr


class ndarray:  # mirrors cupy.ndarray
    """A numpy array standing for device memory (SIMULATED)."""

    def __init__(self, a: np.ndarray) -> None:
        self._a = a

    @property
    def data(self) -> _Pointer:
        return _Pointer(self._a.ctypes.data)

    nbytes = property(lambda self: self._a.nbytes)
    dtype = property(lambda self: self._a.dtype)
    shape = property(lambda self: self._a.shape)
    size = property(lambda self: self._a.size)
    flags = property(lambda self: self._a.flags)

    def __len__(self) -> int:
        return len(self._a)

    def __getitem__(self, key: Any) -> ndarray:
        return ndarray(self._a[key])

    def __setitem__(self, key: Any, value: Any) -> None:
        self._a[key] = value._a if isinstance(value, ndarray) else value

    def view(self, dtype: Any) -> ndarray:
        return ndarray(self._a.view(dtype))

    def reshape(self, *shape: Any) -> ndarray:
        return ndarray(self._a.reshape(*shape))

    def copy(self) -> ndarray:
        return ndarray(self._a.copy())

    def get(self) -> np.ndarray:
        return self._a.copy()


def empty(n: Any, dtype: Any = np.float64) -> ndarray:
    return ndarray(np.empty(n, dtype=dtype))


def zeros(n: Any, dtype: Any = np.float64) -> ndarray:
    return ndarray(np.zeros(n, dtype=dtype))


def asarray(a: Any) -> ndarray:
    return ndarray(np.array(a._a if isinstance(a, ndarray) else a, copy=True))


class _Event:
    done = True

    def synchronize(self) -> None:
        pass


class _Stream:
    ptr = 0

    def __init__(self, non_blocking: bool = False) -> None:
        self.non_blocking = non_blocking

    def record(self) -> _Event:
        return _Event()

    def wait_event(self, event: _Event) -> None:
        pass

    def synchronize(self) -> None:
        pass

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _Device:
    def __init__(self, index: int) -> None:
        self.index = index

    def __enter__(self) -> _Device:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _Kernel:
    def __init__(self, lib: ctypes.CDLL, name: str) -> None:
        self._lib = lib
        self.name = name
        sig = lib.cchet_emu_signature(name.encode())
        if sig is None:
            raise RuntimeError(f"no kernel named {name}")
        self.signature = sig.decode()

    def __call__(self, grid: tuple[int, ...], block: tuple[int, ...], args: tuple[Any, ...]) -> None:
        if len(args) != len(self.signature):
            raise TypeError(f"{self.name} takes {len(self.signature)} arguments, got {len(args)}")
        held = []
        for i, (kind, value) in enumerate(zip(self.signature, args, strict=True)):
            if kind == "p" and isinstance(value, ndarray):
                held.append(ctypes.c_void_p(value.data.ptr))
            elif kind == "u" and isinstance(value, np.uint32):
                held.append(ctypes.c_uint32(int(value)))
            elif kind == "q" and isinstance(value, np.int64):
                held.append(ctypes.c_int64(int(value)))
            else:
                raise TypeError(f"{self.name} argument {i}: expected kind {kind!r}, got {type(value).__name__}")
        argv = (ctypes.c_void_p * len(held))(*(ctypes.addressof(h) for h in held))
        if self._lib.cchet_emu_launch(self.name.encode(), grid[0], block[0], argv) != 0:
            raise RuntimeError(f"launch of {self.name} failed")


class RawModule:
    """Records how it was built; ``get_function`` returns an emulated kernel."""

    instances: ClassVar[list[RawModule]] = []

    def __init__(self, *, code: str, options: tuple[str, ...], backend: str, lib: ctypes.CDLL) -> None:
        self.code, self.options, self.backend = code, options, backend
        self._lib = lib
        RawModule.instances.append(self)

    def get_function(self, name: str) -> _Kernel:
        return _Kernel(self._lib, name)


def make(lib: ctypes.CDLL, *, devices: int = 1) -> SimpleNamespace:
    """The fake ``cupy`` module over the emulator library ``lib``."""
    lib.cchet_emu_signature.restype = ctypes.c_char_p
    lib.cchet_emu_launch.argtypes = [ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p]
    pinned: list[bytearray] = []

    def alloc_pinned_memory(n: int) -> bytearray:
        buf = bytearray(n)
        pinned.append(buf)
        return buf

    runtime = SimpleNamespace(
        getDeviceCount=lambda: devices,
        getDeviceProperties=lambda i: {"name": b"SIMULATED CuPy device (numpy + CPU emulation)"},
        memcpyAsync=lambda dst, src, size, kind, stream: ctypes.memmove(dst, src, size),
        memsetAsync=lambda ptr, value, size, stream: ctypes.memset(ptr, value, size),
    )
    cuda = SimpleNamespace(
        runtime=runtime,
        Device=_Device,
        Stream=_Stream,
        get_elapsed_time=lambda a, b: 0.0,
        alloc_pinned_memory=alloc_pinned_memory,
    )
    return SimpleNamespace(
        ndarray=ndarray,
        uint8=uint8,
        uint32=uint32,
        empty=empty,
        zeros=zeros,
        asarray=asarray,
        cuda=cuda,
        pinned=pinned,
        RawModule=lambda code, options, backend: RawModule(code=code, options=options, backend=backend, lib=lib),
    )
