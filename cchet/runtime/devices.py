"""The GPUs of confidential calls: the one a ``gpu='cc'`` call runs on, and where sealed arrays open.

A worker serving a ``gpu='cc'`` call runs it on :func:`task_gpu`: Ray's first visible CUDA device, which must be
in confidential-computing mode, identified through NVML as the GPU whose attestation certificate the broker
will check (CUDA device -> its UUID -> the NVML device with that UUID -> that device's attestation certificate).
The worker names that certificate's SHA-256 in its key request, and the broker releases keys only when a
report signed by that very certificate passed (:func:`cchet.broker.tickets.unmet_requirements`). On a
SIMULATED ``+gpu`` node the GPU is the process's :class:`~cchet.gpu.simulated_gpu.SimulatedGpu`, whose identity
is the simulator's GPU certificate.

Sealed arrays move between host and device through one :class:`~cchet.gpu.channel.BounceChannel` per device
and chunk size (:func:`channel`), made on first use and kept for the process.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from dataclasses import dataclass
from typing import Any

from cchet.errors import DeviceUnavailable
from cchet.gpu.device import Device

__all__ = [
    "TaskGpu",
    "channel",
    "contiguous",
    "device_of",
    "local_device",
    "simulated_gpu",
    "task_gpu",
    "upload",
]

SIMULATED_IDENTITY_ENV = "CCHET_SIM_GPU_IDENTITY"
"""Simulation only: the identity the SIMULATED GPU claims (default: the simulator's GPU certificate) -- a
task that lands on a GPU other than the one attested, for the tests of that refusal."""

_lock = threading.Lock()
_channels: dict[tuple[int, int], Any] = {}


@dataclass(frozen=True)
class TaskGpu:
    """The GPU a call runs on: the device, and its identity (SHA-256 hex of its attestation certificate)."""

    device: Device
    identity: str


@functools.cache
def simulated_gpu() -> Any:
    """This process's SIMULATED GPU; its identity is the simulator's GPU certificate (of the key directory in
    ``CCHET_SIM_KEY_DIR``, or the default one)."""
    from cchet.attest.simulate.authority import SimulatedAuthority
    from cchet.gpu.simulated_gpu import SimulatedGpu

    identity = (
        os.environ.get(SIMULATED_IDENTITY_ENV)
        or hashlib.sha256(SimulatedAuthority.open(os.environ.get("CCHET_SIM_KEY_DIR")).der("nvidia_leaf")).hexdigest()
    )
    return SimulatedGpu(0, identity=identity)


def _uuid_text(raw: bytes) -> str:
    h = bytes(raw).hex()
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def cuda_task_gpu(cp: Any, nvml: Any = None) -> TaskGpu:
    """CUDA device 0 of this process (the first Ray made visible) as a :class:`TaskGpu`, through CuPy ``cp``
    and NVML (``nvml`` is a pynvml-like module for tests). Raises :class:`~cchet.DeviceUnavailable` naming the
    problem: no CUDA device, CC mode off, or no NVML device with the CUDA device's UUID."""
    from cchet.attest.claims import identity_of_chain
    from cchet.attest.formats.certchain import der_to_pem
    from cchet.gpu.cuda_device import CudaDevice
    from cchet.platform.nvml import Nvml

    try:
        props = cp.cuda.runtime.getDeviceProperties(0)
    except Exception as e:
        raise DeviceUnavailable(f"this worker has no CUDA device ({e}); was the task given num_gpus?") from e
    if not props.get("uuid"):
        raise DeviceUnavailable("CuPy does not report the CUDA device's UUID; upgrade CuPy (cupy-cuda13x)")
    uuid = _uuid_text(props["uuid"])
    with Nvml(module=nvml) as nv:
        state = nv.cc_state()
        if state is None or not state.enabled:
            raise DeviceUnavailable(
                f"the GPU this task runs on ({uuid}) is not in confidential-computing mode: no key is released "
                "to it (enable CC mode with NVIDIA's tools)"
            )
        index = next((g.index for g in nv.gpus() if g.uuid.lower() == uuid.lower()), None)
        if index is None:
            raise DeviceUnavailable(f"NVML has no GPU with the UUID of this task's CUDA device ({uuid})")
        chain = b"".join(der_to_pem(der) for der in nv.certificate_chain(index).attestation)
    identity = identity_of_chain(chain)
    if not identity:
        raise DeviceUnavailable(f"NVML serves no attestation certificate for GPU {index} ({uuid})")
    return TaskGpu(CudaDevice(0), identity)


_found: list[TaskGpu] = []


def task_gpu() -> TaskGpu:
    """The GPU this worker runs its ``gpu='cc'`` calls on (see the module docstring), found once per process
    (CUDA binds a process to the devices it first saw). Raises :class:`~cchet.DeviceUnavailable` when there is
    none that may receive keys, saying why."""
    with _lock:
        if not _found:
            _found.append(_find_task_gpu())
        return _found[0]


def _find_task_gpu() -> TaskGpu:
    kind = os.environ.get("CCHET_SIMULATE")
    if kind:
        from cchet.attest.simulate.attester import parse_kind

        if not parse_kind(kind)[1]:
            raise DeviceUnavailable(f"this SIMULATED {kind} node has no GPU (simulate it with '{kind}+gpu')")
        gpu = simulated_gpu()
        return TaskGpu(gpu, gpu.identity)
    from cchet.gpu.runtime import require_cupy

    return cuda_task_gpu(require_cupy())


def local_device(index: int, *, simulated: bool) -> Device:
    """The driver's device ``index`` for :func:`cchet.get` (``device=``): the SIMULATED GPU in a session that
    simulates one, else CUDA device ``index`` (:class:`~cchet.DeviceUnavailable` without one)."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"device must be a GPU index >= 0, got {index!r}")
    if simulated:
        if index:
            raise DeviceUnavailable(f"a SIMULATED session has one GPU (device=0), not device={index}")
        return simulated_gpu()  # type: ignore[no-any-return]
    from cchet.gpu.cuda_device import CudaDevice

    return CudaDevice(index)


def device_of(obj: object) -> Device | None:
    """The device an array lives on (a CuPy array's CUDA device, the SIMULATED GPU for its arrays), or None
    for anything else."""
    from cchet.gpu.simulated_gpu import SimulatedDeviceArray

    if isinstance(obj, SimulatedDeviceArray):
        return simulated_gpu()  # type: ignore[no-any-return]
    module = type(obj).__module__
    if module.startswith("cupy") and type(obj).__name__ == "ndarray":
        from cchet.gpu.cuda_device import CudaDevice

        return _cuda(CudaDevice, int(obj.device.id))  # type: ignore[attr-defined]
    return None


def contiguous(device: Device, array: Any) -> Any:
    """``array`` (on ``device``) as a C-contiguous device array, copied on the device when it is not one."""
    if array.flags.c_contiguous:
        return array
    if device.simulated:
        from cchet.gpu.simulated_gpu import SimulatedDeviceArray

        return array.copy(order="C").view(SimulatedDeviceArray)
    return device.cp.ascontiguousarray(array)  # type: ignore[attr-defined]


def upload(device: Device, host: Any) -> Any:
    """A plain copy of a (small) host array onto ``device``, as ``cupy.asarray`` makes it."""
    if device.simulated:
        return device.to_device(host)  # type: ignore[attr-defined]
    cp = device.cp  # type: ignore[attr-defined]
    with cp.cuda.Device(device.index):
        return cp.asarray(host)


@functools.cache
def _cuda(cls: Any, index: int) -> Device:
    return cls(index)  # type: ignore[no-any-return]


def channel(device: Device, chunk_size: int) -> Any:
    """This process's :class:`~cchet.gpu.channel.BounceChannel` to ``device`` for streams of ``chunk_size``."""
    from cchet.gpu.channel import BounceChannel

    slot = (id(device), chunk_size)
    with _lock:
        found = _channels.get(slot)
        if found is None:
            found = _channels[slot] = BounceChannel(device, chunk_size=chunk_size)
        return found
