"""A SIMULATED CuPy for tests: just the parts cchet.gpu.cuda_device uses, on the CPU, with CUDA's stream
semantics made deterministic.

Device memory is numpy memory (``.data.ptr`` is its real address, so ``memcpyAsync``/``memsetAsync``
move real bytes); ``RawModule`` launches the kernels of ``kernels/aes_gcm.cu`` through the CPU emulation
built as a shared library (``emulator/launch_lib.cpp``), after checking every argument's type against
the kernel's signature.

Streams are *lazy*: copies, fills and kernels are queued on a stream (the one named by pointer, or the
thread's current stream: ``with stream:``, else ``Stream.null``) and run only when something needs them:
``stream.synchronize()``, ``event.synchronize()``, an ``event.done`` query (the device catches up to the
event), or a stream that runs a ``wait_event`` on another stream's event. Nothing orders two streams
except ``wait_event``, so work that forgot to wait for another stream reads what that stream has not
written yet, deterministically. Device memory is filled with a poison byte when allocated and again when
its last ndarray dies (CuPy hands it back to its pool, where anything may reuse it), so a kernel that runs
after its buffers were dropped reads poison. :attr:`Sim.log` records, in host order, every record, wait,
copy, fill and launch with its stream, for tests of ordering; :attr:`Sim.gets` and :attr:`Sim.d2h` count
blocking reads and device-to-host copies.

It tests cchet's CuPy glue (argument order and types, slicing, copies, stream order, lifetimes,
verdicts), not CuPy or a GPU.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np

uint8 = np.uint8
uint32 = np.uint32
POISON = 0xDB
H2D, D2H = 1, 2


@dataclass
class Sim:
    """The state of one SIMULATED device."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    log: list[tuple[Any, ...]] = field(default_factory=list)
    streams: dict[int, _Stream] = field(default_factory=dict)
    local: threading.local = field(default_factory=threading.local)
    graveyard: list[np.ndarray] = field(default_factory=list)
    gets: int = 0
    d2h: list[int] = field(default_factory=list)
    ids: Any = field(default_factory=lambda: itertools.count(1))
    null: _Stream | None = None

    def current(self) -> _Stream:
        stack: list[_Stream] = getattr(self.local, "stack", [])
        if stack:
            return stack[-1]
        assert self.null is not None
        return self.null


class _Alloc:
    """One device allocation; poisoned (and left for reuse) when the last ndarray on it dies."""

    def __init__(self, sim: Sim, nbytes: int) -> None:
        self.sim = sim
        self.buf = np.full(nbytes, POISON, dtype=np.uint8)

    def __del__(self) -> None:
        self.buf.fill(POISON)
        self.sim.graveyard.append(self.buf)  # the address stays valid for kernels still queued


class _Pointer:
    def __init__(self, ptr: int) -> None:
        self.ptr = ptr


class ndarray:  # mirrors cupy.ndarray
    """A numpy array standing for device memory (SIMULATED)."""

    def __init__(self, a: np.ndarray, alloc: _Alloc) -> None:
        self._a = a
        self._alloc = alloc

    @property
    def data(self) -> _Pointer:
        return _Pointer(self._a.ctypes.data if self._a.size else 0)

    nbytes = property(lambda self: self._a.nbytes)
    dtype = property(lambda self: self._a.dtype)
    shape = property(lambda self: self._a.shape)
    size = property(lambda self: self._a.size)
    flags = property(lambda self: self._a.flags)

    def __len__(self) -> int:
        return len(self._a)

    def __getitem__(self, key: Any) -> ndarray:
        return ndarray(self._a[key], self._alloc)

    def __setitem__(self, key: Any, value: Any) -> None:
        sim = self._alloc.sim
        target = self._a
        snapshot = np.array(value._a if isinstance(value, ndarray) else value, copy=True)

        def run() -> None:
            target[key] = snapshot

        sim.current()._enqueue(("setitem",), run)

    def view(self, dtype: Any) -> ndarray:
        return ndarray(self._a.view(dtype), self._alloc)

    def reshape(self, *shape: Any) -> ndarray:
        return ndarray(self._a.reshape(*shape), self._alloc)

    def copy(self) -> ndarray:
        sim = self._alloc.sim
        out = _new(sim, self._a.shape, self._a.dtype)
        src, dst = self._a, out._a

        def run() -> None:
            dst[...] = src

        sim.current()._enqueue(("copy-array",), run)
        return out

    def get(self) -> np.ndarray:
        """Like CuPy: copy on the current stream and wait for that stream (only that one)."""
        sim = self._alloc.sim
        sim.gets += 1
        sim.current().synchronize()
        return self._a.copy()


def _new(sim: Sim, shape: Any, dtype: Any) -> ndarray:
    dt = np.dtype(dtype)
    count = int(np.prod(shape)) if isinstance(shape, tuple) else int(shape)
    alloc = _Alloc(sim, count * dt.itemsize)
    return ndarray(alloc.buf.view(dt).reshape(shape), alloc)


class _Event:
    def __init__(self, sim: Sim, block: bool = False, disable_timing: bool = False) -> None:
        self.id = next(sim.ids)
        self.block = block
        self.stream: _Stream = sim.null  # type: ignore[assignment]  # until recorded
        self.reached = True  # an event never recorded is complete, as in CUDA

    @property
    def done(self) -> bool:
        self.stream._run_until(self)  # a query lets the SIMULATED device catch up to the event
        return True

    def synchronize(self) -> None:
        self.stream._run_until(self)


class _Stream:
    null: ClassVar[_Stream]

    def __init__(self, sim: Sim, non_blocking: bool = False, *, ptr: int | None = None) -> None:
        self.sim = sim
        self.non_blocking = non_blocking
        self.ptr = next(sim.ids) if ptr is None else ptr
        self.name = "null" if self.ptr == 0 else f"stream-{self.ptr}"
        self._ops: deque[Callable[[], None]] = deque()
        sim.streams[self.ptr] = self

    def _enqueue(self, entry: tuple[Any, ...], op: Callable[[], None]) -> None:
        with self.sim.lock:
            self.sim.log.append((entry[0], self.name, *entry[1:]))
            self._ops.append(op)

    def record(self, event: _Event | None = None) -> _Event:
        ev = _Event(self.sim) if event is None else event
        ev.stream, ev.reached = self, False

        def reach() -> None:
            ev.reached = True

        self._enqueue(("record", ev.id), reach)
        return ev

    def wait_event(self, event: _Event) -> None:
        self._enqueue(("wait", event.id, event.stream.name), event.synchronize)

    def _run_until(self, event: _Event | None) -> None:
        with self.sim.lock:
            while self._ops and (event is None or not event.reached):
                self._ops.popleft()()

    def synchronize(self) -> None:
        self._run_until(None)

    def __enter__(self) -> _Stream:
        self.sim.local.__dict__.setdefault("stack", []).append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.sim.local.stack.pop()


class _Device:
    def __init__(self, index: int) -> None:
        self.index = index

    def __enter__(self) -> _Device:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _Kernel:
    def __init__(self, sim: Sim, lib: ctypes.CDLL, name: str) -> None:
        self._sim = sim
        self._lib = lib
        self.name = name
        sig = lib.cchet_emu_signature(name.encode())
        if sig is None:
            raise RuntimeError(f"no kernel named {name}")
        self.signature = sig.decode()
        self.kernel = SimpleNamespace(ptr=id(self))

    def __call__(self, grid: tuple[int, ...], block: tuple[int, ...], args: tuple[Any, ...]) -> None:
        if len(args) != len(self.signature):
            raise TypeError(f"{self.name} takes {len(self.signature)} arguments, got {len(args)}")
        held: list[Any] = []
        for i, (kind, value) in enumerate(zip(self.signature, args, strict=True)):
            if kind == "p" and isinstance(value, ndarray):
                held.append(ctypes.c_void_p(value.data.ptr))
            elif kind == "u" and isinstance(value, np.uint32):
                held.append(ctypes.c_uint32(int(value)))
            elif kind == "q" and isinstance(value, np.int64):
                held.append(ctypes.c_int64(int(value)))
            else:
                raise TypeError(f"{self.name} argument {i}: expected kind {kind!r}, got {type(value).__name__}")
        lib, name = self._lib, self.name

        def run() -> None:
            argv = (ctypes.c_void_p * len(held))(*(ctypes.addressof(h) for h in held))
            if lib.cchet_emu_launch(name.encode(), grid[0], block[0], argv) != 0:
                raise RuntimeError(f"launch of {name} failed")

        self._sim.current()._enqueue(("kernel", name, grid[0]), run)


class RawModule:
    """Records how it was built; ``get_function`` returns an emulated kernel."""

    instances: ClassVar[list[RawModule]] = []

    def __init__(self, *, code: str, options: tuple[str, ...], backend: str, lib: ctypes.CDLL, sim: Sim) -> None:
        self.code, self.options, self.backend = code, options, backend
        self._lib = lib
        self._sim = sim
        RawModule.instances.append(self)

    def get_function(self, name: str) -> _Kernel:
        return _Kernel(self._sim, self._lib, name)


def make(lib: ctypes.CDLL, *, devices: int = 1, sm_count: int = 2, blocks_per_sm: int = 2) -> SimpleNamespace:
    """The fake ``cupy`` module over the emulator library ``lib`` (its device: ``sm_count`` SMs of
    ``blocks_per_sm`` resident blocks of the kernels each); ``.sim`` is its :class:`Sim`."""
    lib.cchet_emu_signature.restype = ctypes.c_char_p
    lib.cchet_emu_launch.argtypes = [ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p]
    sim = Sim()
    sim.null = _Stream(sim, ptr=0)
    pinned: list[bytearray] = []

    def alloc_pinned_memory(n: int) -> bytearray:
        buf = bytearray(n)
        pinned.append(buf)
        return buf

    def memcpy_async(dst: int, src: int, size: int, kind: int, stream: int) -> None:
        if kind == D2H:
            sim.d2h.append(size)

        def run() -> None:
            ctypes.memmove(dst, src, size)

        sim.streams[stream]._enqueue(("copy", kind, size), run)

    def memset_async(ptr: int, value: int, size: int, stream: int) -> None:
        def run() -> None:
            ctypes.memset(ptr, value, size)

        sim.streams[stream]._enqueue(("memset", size), run)

    def empty(n: Any, dtype: Any = np.float64) -> ndarray:
        return _new(sim, n, dtype)

    def zeros(n: Any, dtype: Any = np.float64) -> ndarray:
        out = _new(sim, n, dtype)
        target = out._a

        def run() -> None:
            target[...] = 0

        sim.current()._enqueue(("fill",), run)
        return out

    def asarray(a: Any) -> ndarray:
        if isinstance(a, ndarray):
            return a
        host = np.array(a, copy=True)  # pageable source: consumed when the call returns
        out = _new(sim, host.shape, host.dtype)
        target = out._a

        def run() -> None:
            target[...] = host

        sim.current()._enqueue(("asarray", host.nbytes), run)
        return out

    def stream_factory(non_blocking: bool = False) -> _Stream:
        return _Stream(sim, non_blocking)

    stream_factory.null = sim.null  # type: ignore[attr-defined]

    runtime = SimpleNamespace(
        getDeviceCount=lambda: devices,
        getDeviceProperties=lambda i: {
            "name": b"SIMULATED CuPy device (numpy + CPU emulation)",
            "multiProcessorCount": sm_count,
        },
        memcpyAsync=memcpy_async,
        memsetAsync=memset_async,
    )
    driver = SimpleNamespace(occupancyMaxActiveBlocksPerMultiprocessor=lambda func, block, smem: blocks_per_sm)

    def event_factory(block: bool = False, disable_timing: bool = False, interprocess: bool = False) -> _Event:
        return _Event(sim, block, disable_timing)

    cuda = SimpleNamespace(
        runtime=runtime,
        driver=driver,
        Device=_Device,
        Event=event_factory,
        Stream=stream_factory,
        get_current_stream=sim.current,
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
        sim=sim,
        RawModule=lambda code, options, backend: RawModule(
            code=code, options=options, backend=backend, lib=lib, sim=sim
        ),
    )
