"""cchet's CuPy glue (cuda_device, ondevice, BounceChannel on CudaDevice), run on the CPU against a
SIMULATED CuPy (``fake_cupy.py``) whose kernels are the real kernel source under the CPU emulation.

Checks argument order and types of every launch against the kernel signatures, slicing, copies,
verdicts and zeroing on the CUDA code path. Skips, saying why, when g++ is absent.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys
from typing import Any

import numpy as np
import pytest

from cchet import seal, unseal
from cchet.crypto import format as fmt
from cchet.errors import DeviceUnavailable, IntegrityError
from cchet.gpu import loader, ondevice, reference
from cchet.gpu import schedule as sched
from cchet.gpu.channel import BounceChannel
from cchet.gpu.cuda_device import CudaDevice
from cchet.gpu.device import Batch, KernelRefused
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


# ----------------------------------------------------------------------------- stream order (review item 1)

WORK = ("copy", "kernel", "memset")


def assert_joined(log: list[tuple[Any, ...]], caller: str) -> set[str]:
    """Every stream that copies, zeroes or launches in ``log`` waited, before its first such op, on an event
    recorded on ``caller``; and ``caller`` waited, after each one's last such op, on an event recorded there.
    Returns those streams."""
    recorded_on = {e[2]: e[1] for e in log if e[0] == "record"}
    workers = {e[1] for e in log if e[0] in WORK and e[1] != caller}
    assert workers
    for w in workers:
        mine = [i for i, e in enumerate(log) if e[1] == w]
        first = next(i for i in mine if log[i][0] in WORK)
        assert any(log[i][0] == "wait" and recorded_on.get(log[i][2]) == caller for i in mine if i < first), w
        last = max(i for i in mine if log[i][0] in WORK)
        after = {log[i][2] for i in mine if i > last and log[i][0] == "record"}
        assert any(e[0] == "wait" and e[1] == caller and e[2] in after for e in log), w
    return workers


def test_ondevice_joins_the_callers_stream(cp: Any) -> None:
    """The caller's input is produced lazily on its own (non-blocking) current stream; seal and unseal
    read it only after that stream got there, and the caller's stream waits for their results."""
    data = os.urandom(3 * CS + 5)
    blob = seal(KEY, data, context=b"o", chunk_size=CS)
    with cp.cuda.Stream(non_blocking=True) as caller:
        start = len(cp.sim.log)
        sealed = ondevice.seal(KEY, host(cp, data), context=b"o", chunk_size=CS)
        assert_joined(cp.sim.log[start:], caller.name)
        assert unseal(KEY, sealed.get().tobytes(), context=b"o") == data
        start = len(cp.sim.log)
        opened = ondevice.unseal(KEY, host(cp, blob), context=b"o")
        assert_joined(cp.sim.log[start:], caller.name)
        assert opened.get().tobytes() == data


@pytest.mark.parametrize("entry", ["to_device", "to_host", "to_host_sealed", "pre-sealed"])
def test_bounce_channel_joins_the_callers_stream(cp: Any, entry: str) -> None:
    key = DataKey.generate()
    data = os.urandom(5 * CS + 77)
    ch = BounceChannel(0, slots=2, slot_chunks=2, chunk_size=CS, streams=2, threads=2)
    with ch, cp.cuda.Stream(non_blocking=True) as caller:
        start = len(cp.sim.log)
        if entry == "to_device":
            got = ch.to_device(np.frombuffer(data, np.uint8)).get().tobytes()
        elif entry == "pre-sealed":
            got = ch.to_device(seal(key, data, chunk_size=CS), key=key).get().tobytes()
        elif entry == "to_host":
            got = ch.to_host(host(cp, data)).tobytes()
        else:
            got = unseal(key, ch.to_host_sealed(host(cp, data), key))
        workers = assert_joined(cp.sim.log[start:], caller.name)
    assert got == data
    assert len(workers) == 4  # both stream pairs


def test_direct_launches_join_the_callers_stream_and_wait_for_the_schedule(cp: Any) -> None:
    dev = CudaDevice(0)
    data = os.urandom(2 * CS)
    header = fmt.Header(12, KEY.key_id, os.urandom(32), os.urandom(7), len(data))
    schedule = StreamSchedule.for_stream(KEY, header, b"", plan(2, CS))
    start = len(cp.sim.log)
    gcm = dev.gcm(schedule, CS)
    sealed = cp.empty(len(data) + 32, dtype=cp.uint8)
    launch = gcm.seal(host(cp, data), sealed, Batch(0, 2, CS, True), dev.stream())  # join_caller=True
    log = cp.sim.log[start:]
    assert_joined(log, "null")
    upload = next(i for i, e in enumerate(log) if e[0] == "asarray" and e[2] == schedule.words.nbytes)
    ready = next(e[2] for e in log[upload:] if e[0] == "record" and e[1] == log[upload][1])
    first_kernel = next(i for i, e in enumerate(log) if e[0] == "kernel")
    assert any(e[0] == "wait" and e[2] == ready and e[1] == log[first_kernel][1] for e in log[:first_kernel])
    assert sealed.get().tobytes() == reference.seal_batch(schedule, data, CS, 0, final=True)[0]
    assert launch.accepted()


# --------------------------------------------------------------------- lifetimes (review item 3b)


def test_a_dropped_gcm_keeps_its_schedule_until_the_launch_ran(cp: Any) -> None:
    """Device memory is poisoned as soon as its last reference dies; the launch still reads the right
    schedule because it holds it (before, `dev.gcm(...).open(...)` let it go at once)."""
    dev = CudaDevice(0)
    data = os.urandom(3 * CS - 1)
    header = fmt.Header(12, KEY.key_id, os.urandom(32), os.urandom(7), len(data))
    schedule = StreamSchedule.for_stream(KEY, header, b"", plan(3, CS))
    body, _ = reference.seal_batch(schedule, data, CS, 0, final=True)
    out = cp.empty(len(data), dtype=cp.uint8)
    stream = dev.stream()
    launch = dev.gcm(schedule, CS).open(host(cp, body), out, Batch(0, 3, CS - 1, True), stream)
    gc.collect()
    assert launch.all_authentic()
    assert out.get().tobytes() == data


# ------------------------------------------------------------ verdicts read once, tamper (review item 2)


def test_channel_reads_verdicts_once_from_pinned_reports(cp: Any) -> None:
    data = np.frombuffer(os.urandom(9 * CS + 3), np.uint8)  # 10 chunks: 5 batches of 2
    with BounceChannel(0, slots=2, slot_chunks=2, chunk_size=CS, streams=2, threads=2) as ch:
        cp.sim.gets, before = 0, len(cp.sim.d2h)
        d = ch.to_device(data)
        assert cp.sim.gets == 0  # no blocking device read at all
        assert cp.sim.d2h[before:] == [4 * (1 + 2)] * 5  # one small copy per batch: status + 2 verdicts
        before = len(cp.sim.d2h)
        assert ch.to_host(d).tobytes() == data.tobytes()
        assert cp.sim.gets == 0
        assert sum(1 for size in cp.sim.d2h[before:] if size == 4) == 5  # each seal's status word


def test_channel_tamper_on_the_cuda_path_stops_and_zeroes(cp: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    uploads: list[int] = []
    outputs: list[Any] = []
    real_upload, real_empty = CudaDevice.upload, CudaDevice.empty

    def tampering_upload(self: CudaDevice, dst: Any, src: Any, stream: Any) -> None:
        real_upload(self, dst, src, stream)
        if len(uploads) == 2:
            src[100] ^= 1  # the copy has not run yet: it carries the flipped bit
        uploads.append(len(src))

    def recording_empty(self: CudaDevice, nbytes: int) -> Any:
        outputs.append(real_empty(self, nbytes))
        return outputs[-1]

    monkeypatch.setattr(CudaDevice, "upload", tampering_upload)
    monkeypatch.setattr(CudaDevice, "empty", recording_empty)
    data = np.full(12 * CS, 3, dtype=np.uint8)
    with BounceChannel(0, slots=2, slot_chunks=1, chunk_size=CS, streams=2, threads=1) as ch:
        with pytest.raises(IntegrityError):
            ch.to_device(data)
        assert ch.last_stats is not None and ch.last_stats.aborted_at == 2
    assert len(uploads) == 3  # the device caught up at once here: nothing after the bad batch was sent
    assert not outputs[-1].get().any()


# -------------------------------------------------------------------- kernel status (review item 3a)


def corrupt_geometry(monkeypatch: pytest.MonkeyPatch) -> None:
    real = StreamSchedule.for_stream

    def bad(*args: Any, **kwargs: Any) -> StreamSchedule:
        s = real(*args, **kwargs)
        words = s.words.copy()
        words[sched.GEOM + 1] = 100
        return StreamSchedule(words=words, geometry=s.geometry)

    monkeypatch.setattr(StreamSchedule, "for_stream", bad)


def test_refused_seal_raises_on_the_cuda_path(cp: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real kernel (emulated) refuses a schedule whose geometry words are not its own; seal raises
    instead of returning what it wrote (before, only the open path read the status word)."""
    data = host(cp, os.urandom(2 * CS))
    with BounceChannel(0, slots=2, slot_chunks=1, chunk_size=CS, threads=1) as ch:
        corrupt_geometry(monkeypatch)
        with pytest.raises(KernelRefused):
            ondevice.seal(KEY, data, chunk_size=CS)
        with pytest.raises(KernelRefused):
            ch.to_host_sealed(data, KEY)


# ------------------------------------------------------------------------- grid sizes (review item 3d)


def test_launch_grids_fit_the_resident_blocks(cp: Any) -> None:
    """The SIMULATED device has 2 SMs of 2 resident blocks: no launch uses more than 4 blocks."""
    dev = CudaDevice(0)
    assert (dev.sm_count, dev.blocks_per_sm) == (2, 2)
    data = os.urandom(6 * 8192 - 5)
    start = len(cp.sim.log)
    sealed = ondevice.seal(KEY, host(cp, data), chunk_size=8192, device=dev)
    grids = [e[3] for e in cp.sim.log[start:] if e[0] == "kernel"]
    assert grids and max(grids) <= 4
    assert unseal(KEY, sealed.get().tobytes()) == data


# --------------------------------------------------------------- compile-time variants (review item 4)


def test_loader_builds_variants_only_when_asked(cp: Any) -> None:
    fake_cupy.RawModule.instances.clear()
    plain = loader.module(0)
    leaky = loader.module(0, defines={"CCHET_TABLE_LAYOUT_CONFLICT": 1})
    assert leaky is not plain and loader.module(0, defines={"CCHET_TABLE_LAYOUT_CONFLICT": 1}) is leaky
    built = {m.options for m in fake_cupy.RawModule.instances}
    assert built == {loader.NVRTC_OPTIONS, (*loader.NVRTC_OPTIONS, "-DCCHET_TABLE_LAYOUT_CONFLICT=1")}
    assert CudaDevice(0).defines is None  # never the default
    dev = CudaDevice(0, defines={"CCHET_TABLE_LAYOUT_CONFLICT": 1})
    header = fmt.Header(12, KEY.key_id, os.urandom(32), os.urandom(7), CS)
    assert dev.gcm(StreamSchedule.for_stream(KEY, header, b"", plan(1, CS)), CS)._mod is leaky
    with pytest.raises(ValueError, match="CCHET_"):
        loader.module(0, defines={"NDEBUG": 1})
    with pytest.raises(ValueError, match="CCHET_"):
        CudaDevice(0, defines={"CCHET_X=1 -G": 1})
    with pytest.raises(TypeError):
        loader.define_options({"CCHET_TABLE_LAYOUT_CONFLICT": "1; rm"})  # type: ignore[dict-item]
