"""cchet's CuPy glue (cuda_device, ondevice, BounceChannel on CudaDevice), run on the CPU against a
SIMULATED CuPy (``fake_cupy.py``) whose kernels are the real kernel source under the CPU emulation.

Checks argument order and types of every launch against the kernel signatures, slicing, copies,
verdicts and zeroing on the CUDA code path. Skips, saying why, when g++ is absent.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any

import numpy as np
import pytest

from cchet import seal, unseal
from cchet.crypto import format as fmt
from cchet.errors import DeviceUnavailable, IntegrityError
from cchet.gpu import loader, ondevice, reference
from cchet.gpu.channel import BounceChannel
from cchet.gpu.cuda_device import CudaDevice
from cchet.gpu.device import Batch
from cchet.gpu.geometry import plan
from cchet.gpu.schedule import StreamSchedule
from cchet.hazmat.keys import DataKey
from tests.gpu_host import fake_cupy
from tests.gpu_host.emulation import build

KEY = DataKey.generate()
CS = 4096


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    lib = tmp_path_factory.mktemp("emu") / "libcchet_emu.so"
    return ctypes.CDLL(str(build("launch_lib.cpp", lib, "-fPIC", "-shared")))

@pytest.fixture
def cp(emulator: ctypes.CDLL, monkeypatch: pytest.MonkeyPatch) -> Any:
    fake = fake_cupy.make(emulator)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(loader, "_modules", {})
    return fake


def host(cp: Any, data: bytes) -> Any:
    return cp.asarray(np.frombuffer(data, dtype=np.uint8))


def test_loader_builds_the_module_with_pinned_options(cp: Any) -> None:
    fake_cupy.RawModule.instances.clear()
    mod = loader.module(0)
    assert loader.module(0) is mod  # cached per device
    assert len(fake_cupy.RawModule.instances) == 1
    built = fake_cupy.RawModule.instances[0]
    assert built.code == loader.source() and built.options == loader.NVRTC_OPTIONS and built.backend == "nvrtc"
    with pytest.raises(DeviceUnavailable, match="does not exist"):
        loader.module(1)


def test_no_gpu_is_device_unavailable(emulator: ctypes.CDLL, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy.make(emulator, devices=0))
    with pytest.raises(DeviceUnavailable, match="nvidia-smi"):
        CudaDevice(0)


@pytest.mark.parametrize("n", [0, 100, 3 * CS + 33])
def test_cuda_gcm_launches_match_reference(cp: Any, n: int) -> None:
    dev = CudaDevice(0)
    assert "SIMULATED" in dev.name
    data = os.urandom(n)
    header = fmt.Header(12, KEY.key_id, os.urandom(32), os.urandom(7), n)
    chunks = fmt.chunk_count(n, CS)
    geometry = plan(chunks, CS)
    schedule = StreamSchedule.for_stream(KEY, header, b"x", geometry)
    batch = Batch(0, chunks, n - (chunks - 1) * CS, True)
    expected, trace = reference.seal_batch(schedule, data, CS, 0, final=True)
    gcm = dev.gcm(schedule, CS)
    sealed = cp.empty(n + 16 * chunks, dtype=cp.uint8)
    launch = gcm.seal(host(cp, data), sealed, batch, dev.stream())
    assert sealed.get().tobytes() == expected
    assert np.array_equal(launch.ek_j0.get().reshape(chunks, 4), trace.ek_j0)
    back = cp.empty(n, dtype=cp.uint8)
    assert gcm.open(sealed, back, batch, dev.stream()).all_authentic()
    assert back.get().tobytes() == data


def test_ondevice_streams_on_the_cuda_path(cp: Any) -> None:
    data = os.urandom(2 * CS + 7)
    sealed = ondevice.seal(KEY, host(cp, data), context=b"c", chunk_size=CS)
    assert unseal(KEY, sealed.get().tobytes(), context=b"c") == data
    blob = seal(KEY, data, context=b"c", chunk_size=CS)
    assert ondevice.unseal(KEY, host(cp, blob), context=b"c").get().tobytes() == data
    bad = bytearray(blob)
    bad[fmt.HEADER_SIZE + 5] ^= 1
    with pytest.raises(IntegrityError):
        ondevice.unseal(KEY, host(cp, bytes(bad)), context=b"c")


def test_misaligned_launch_is_refused(cp: Any) -> None:
    dev = CudaDevice(0)
    header = fmt.Header(12, KEY.key_id, os.urandom(32), os.urandom(7), CS)
    gcm = dev.gcm(StreamSchedule.for_stream(KEY, header, b"", plan(1, CS)), CS)
    buf = cp.zeros(3 * CS, dtype=cp.uint8)
    with pytest.raises(ValueError, match="aligned"):
        gcm.seal(buf[1 : CS + 1], buf[CS + 8 :], Batch(0, 1, CS, True), dev.stream())


def test_bounce_channel_on_the_cuda_path(cp: Any) -> None:
    key = DataKey.generate()
    a = np.random.default_rng(5).integers(0, 2**31, (3 * CS + 40) // 4, dtype=np.int32)
    with BounceChannel(0, slots=2, slot_chunks=2, chunk_size=CS, streams=2) as ch:
        d = ch.to_device(a)
        assert isinstance(d, fake_cupy.ndarray) and d.dtype == np.int32 and d.shape == a.shape
        assert np.array_equal(d.get(), a)
        assert np.array_equal(ch.to_host(d), a)
        blob = ch.to_host_sealed(d, key, context=b"r")
        assert unseal(key, blob, context=b"r") == a.tobytes()
        d2 = ch.to_device(seal(key, a.tobytes(), chunk_size=CS), key=key, dtype=np.int32)
        assert np.array_equal(d2.get(), a)
        assert ch.last_stats is not None and not ch.last_stats.simulated  # the glue believes it is a GPU
    canary = a.tobytes()[:16]
    assert not any(canary in bytes(p) for p in cp.pinned)
