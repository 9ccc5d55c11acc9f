"""Confidential GPU tasks end to end on the SIMULATED GPU of a ``tdx+gpu`` session: array arguments arrive
as device arrays opened by the (simulated) kernel, device results are sealed on the device, NumPy and device
arrays mix, ``cchet.get(device=0)`` and ``cchet.put(device_array)``, refusals, and a canary that shows where a
device argument's plaintext lives in the worker.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cchet
from cchet.gpu.simulated_gpu import SimulatedDeviceArray


@pytest.fixture(scope="module")
def gpu_session(ray_cluster: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    session = cchet.init(simulate="tdx+gpu", audit_log=tmp_path_factory.mktemp("audit") / "audit.jsonl")
    yield session
    cchet.shutdown()


@cchet.remote(gpu="cc")
def step(x: Any, w: Any) -> Any:
    return x @ w


@cchet.remote(gpu="cc")
def kinds(*args: Any, **kwargs: Any) -> list[str]:
    return [type(a).__name__ for a in (*args, *kwargs.values())]


@cchet.remote(gpu="cc", device_args=False)
def host_kinds(*args: Any) -> list[str]:
    return [type(a).__name__ for a in args]


@cchet.remote(gpu="cc")
def mixed(x: Any) -> tuple[Any, Any, dict[str, Any]]:
    return np.asarray(x) + 1, x * 2, {"small": x[:3] * 1, "n": 5}


@cchet.remote
def prepare(raw: np.ndarray) -> np.ndarray:
    return (raw / raw.max()).astype(np.float32)


def test_array_arguments_arrive_on_the_device_and_results_leave_it_sealed(gpu_session: Any) -> None:
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((256, 128)).astype(np.float32), rng.standard_normal((128, 64)).astype(np.float32)
    y = step.remote(x, w)
    host = cchet.get(y)
    assert type(host) is np.ndarray and np.allclose(host, x @ w, atol=1e-4)
    on_device = cchet.get(y, device=0)
    assert isinstance(on_device, SimulatedDeviceArray) and np.allclose(on_device, x @ w, atol=1e-4)
    assert "SIMULATED" in repr(on_device)


def test_every_array_argument_is_a_device_array_unless_device_args_is_false(gpu_session: Any) -> None:
    big, small = np.ones(1 << 18, np.float32), np.arange(5)
    assert cchet.get(kinds.remote(big, small, 3, "s", w=big)) == [
        "SimulatedDeviceArray",
        "SimulatedDeviceArray",
        "int",
        "str",
        "SimulatedDeviceArray",
    ]
    assert cchet.get(host_kinds.remote(big, small)) == ["ndarray", "ndarray"]


def test_numpy_and_device_results_mix_in_one_value(gpu_session: Any) -> None:
    x = np.arange(1 << 16, dtype=np.float64)
    ref = mixed.remote(x)
    a, b, rest = cchet.get(ref)
    assert type(a) is np.ndarray and type(b) is np.ndarray and type(rest["small"]) is np.ndarray
    assert np.array_equal(a, x + 1) and np.array_equal(b, x * 2) and rest["n"] == 5
    a, b, rest = cchet.get(ref, device=0)
    assert (
        type(a) is np.ndarray
        and isinstance(b, SimulatedDeviceArray)
        and isinstance(rest["small"], SimulatedDeviceArray)
    )
    assert np.array_equal(b, x * 2) and np.array_equal(rest["small"], x[:3])


def test_a_device_array_put_by_the_driver_is_sealed_on_its_gpu(gpu_session: Any) -> None:
    from cchet.runtime.devices import simulated_gpu

    gpu = simulated_gpu()
    x = gpu.to_device(np.arange(1 << 16, dtype=np.int32))
    ref = cchet.put({"x": x})
    assert cchet.get(kinds.remote(ref)) == ["dict"]
    assert np.array_equal(cchet.get(ref)["x"], np.arange(1 << 16))
    assert isinstance(cchet.get(ref, device=0)["x"], SimulatedDeviceArray)


def test_a_pipeline_from_a_cpu_task_to_a_gpu_task_and_back(gpu_session: Any) -> None:
    raw = np.arange(1, 1 + 64 * 32, dtype=np.float64).reshape(64, 32)
    w = np.eye(32, dtype=np.float32)
    y = step.remote(prepare.remote(raw), cchet.put(w))
    assert np.allclose(cchet.get(y), (raw / raw.max()).astype(np.float32))


def test_a_task_on_a_gpu_other_than_the_attested_one_gets_no_key(gpu_session: Any) -> None:
    """The worker's GPU claims another identity (as a task that landed on a second, unattested GPU would):
    the broker releases nothing, and says why."""
    elsewhere = step.options(runtime_env={"env_vars": {"CCHET_SIM_GPU_IDENTITY": "ee" * 32}})
    with pytest.raises(cchet.KeyReleaseDenied, match="not one of the attested GPUs"):
        cchet.get(elsewhere.remote(np.ones((2, 2)), np.ones((2, 2))))


def test_device_args_needs_gpu_cc() -> None:
    with pytest.raises(ValueError, match="device_args=False only applies to gpu='cc'"):
        cchet.remote(device_args=False)(lambda: None)


# -- where a device argument's plaintext lives in the worker ----------------------------------------------


def _needle(seed: bytes) -> tuple[bytes, bytes]:
    """The canary's two halves: never held together in one buffer by the scanner, so it does not find itself."""
    digest = hashlib.sha512(seed).digest()
    return digest[:32], digest[32:]


def _canary(seed: bytes, nbytes: int) -> np.ndarray:
    head, tail = _needle(seed)
    return np.frombuffer((head + tail) * (nbytes // 64), dtype=np.uint8)


def scan_self(seed: bytes, skip: list[tuple[int, int]]) -> int:
    """Occurrences of the canary in this process's readable memory outside the ``skip`` ranges."""
    head, tail = _needle(seed)
    found = 0
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", buffering=0) as mem:
        for line in maps.read().splitlines():
            fields = line.split()
            start, end = (int(v, 16) for v in fields[0].split("-"))
            if "r" not in fields[1] or end - start > 1 << 30 or (len(fields) > 5 and fields[5].startswith("[v")):
                continue
            pieces = [(start, end)]
            for s0, n in skip:
                pieces = [
                    part
                    for p0, p1 in pieces
                    for part in ((p0, min(p1, s0)), (max(p0, s0 + n), p1))
                    if part[0] < part[1]
                ]
            for p0, p1 in pieces:
                try:
                    mem.seek(p0)
                    data = mem.read(p1 - p0)
                except (OSError, ValueError, OverflowError):
                    continue
                at = data.find(head)
                while at >= 0:
                    found += data[at + 32 : at + 64] == tail
                    at = data.find(head, at + 1)
    return found


@cchet.remote(gpu="cc")
def where_is_the_canary(x: Any, seed: bytes) -> tuple[str, int, int]:
    from cchet.runtime.devices import simulated_gpu

    gpu = simulated_gpu()
    outside = scan_self(seed, gpu.regions())
    everywhere = scan_self(seed, [])  # the same scan sees the copies in device memory
    head, _ = _needle(seed)
    staged = sum(bytes(buf).count(head) for buf in gpu.pinned_buffers)
    return type(x).__name__, outside + staged, everywhere


@cchet.remote(gpu="cc", device_args=False)
def where_is_the_host_canary(x: Any, seed: bytes) -> tuple[str, int]:
    return type(x).__name__, scan_self(seed, [])


def test_a_device_arguments_plaintext_is_only_in_device_memory(gpu_session: Any) -> None:
    """The worker's whole readable memory -- heap, Ray's object store mapping, the channel's staging slots --
    holds the argument's plaintext nowhere but in the SIMULATED GPU's memory; with ``device_args=False`` (the
    positive control) it is in host memory, so the scan can see it."""
    seed = os.urandom(16)
    kind, outside, everywhere = cchet.get(where_is_the_canary.remote(_canary(seed, 1 << 20), seed))
    assert kind == "SimulatedDeviceArray" and everywhere >= (1 << 20) // 64
    assert outside == 0, f"the plaintext of a device argument was found {outside} times outside device memory"
    control_seed = os.urandom(16)
    kind, found = cchet.get(where_is_the_host_canary.remote(_canary(control_seed, 1 << 20), control_seed))
    assert kind == "ndarray" and found >= (1 << 20) // 64


@cchet.remote(gpu="cc")
class Layer:
    """A confidential GPU actor: its weights arrive on the device once and stay there."""

    def __init__(self, w: Any) -> None:
        self.w = w

    def apply(self, x: Any) -> tuple[str, str, Any]:
        return type(self.w).__name__, type(x).__name__, x @ self.w


def test_a_gpu_actor_keeps_its_device_arrays_across_calls(gpu_session: Any) -> None:
    w = np.eye(128, dtype=np.float32) * 3
    layer = Layer.remote(w)
    for i in range(2):
        x = np.full((64, 128), i + 1, dtype=np.float32)
        w_kind, x_kind, y = cchet.get(layer.apply.remote(x))
        assert (w_kind, x_kind) == ("SimulatedDeviceArray", "SimulatedDeviceArray")
        assert type(y) is np.ndarray and np.array_equal(y, x * 3)
