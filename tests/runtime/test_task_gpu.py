"""Which GPU a ``gpu='cc'`` call runs on, and its identity: CUDA device 0 -> its UUID -> the NVML device with that
UUID -> the SHA-256 of that device's attestation certificate (what the broker checks the evidence for). Real
NVIDIA evidence served by the SIMULATED NVML, a stand-in for the few CuPy calls; no Ray, no GPU."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace
from typing import Any

import pytest

from cchet.errors import DeviceUnavailable
from cchet.platform.fake_nvml import FakeNvml
from cchet.runtime import devices
from tests.conftest import fixture_path

SDK = "nvidia_attestation_sdk/unit_testdata/"


def _nvml(cc_enabled: bool = True) -> FakeNvml:
    return FakeNvml.from_evidence(
        fixture_path(SDK + "hopperAttestationReport.txt"),
        fixture_path(SDK + "hopperCertChain.txt"),
        count=3,
        cc_enabled=cc_enabled,
    )


def _cupy(uuid: bytes | None) -> Any:
    """The one CuPy call the lookup makes, answering for CUDA device 0 (a stand-in, not CuPy)."""
    props = {"name": b"NVIDIA H100 (SIMULATED)"} | ({"uuid": uuid} if uuid is not None else {})
    return SimpleNamespace(cuda=SimpleNamespace(runtime=SimpleNamespace(getDeviceProperties=lambda index: props)))


def _fake_cuda_device(index: int) -> Any:
    return SimpleNamespace(index=index, simulated=False, name="cuda stand-in")


@pytest.fixture(autouse=True)
def _no_cupy_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    from cchet.gpu import cuda_device

    monkeypatch.setattr(cuda_device, "CudaDevice", _fake_cuda_device)


def test_the_cuda_device_is_found_in_nvml_by_uuid_and_named_by_its_certificate() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    nvml = _nvml()
    leaf = x509.load_pem_x509_certificates(fixture_path(SDK + "hopperCertChain.txt").read_bytes())[0]
    found = devices.cuda_task_gpu(_cupy(bytes(10) + (2).to_bytes(6, "big")), nvml)  # NVML's third GPU
    assert found.identity == hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest()
    assert found.device.index == 0


def test_a_gpu_not_in_cc_mode_gets_no_key_and_says_so() -> None:
    with pytest.raises(DeviceUnavailable, match="not in confidential-computing mode"):
        devices.cuda_task_gpu(_cupy(bytes(16)), _nvml(cc_enabled=False))


def test_a_cuda_device_nvml_does_not_know_is_refused() -> None:
    with pytest.raises(DeviceUnavailable, match="NVML has no GPU with the UUID"):
        devices.cuda_task_gpu(_cupy(b"\x42" * 16), _nvml())


def test_a_cupy_without_uuids_is_refused_with_the_fix() -> None:
    with pytest.raises(DeviceUnavailable, match="upgrade CuPy"):
        devices.cuda_task_gpu(_cupy(None), _nvml())


def test_a_simulated_node_without_a_gpu_has_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCHET_SIMULATE", "tdx")
    with pytest.raises(DeviceUnavailable, match=r"simulate it with 'tdx\+gpu'"):
        devices._find_task_gpu()
