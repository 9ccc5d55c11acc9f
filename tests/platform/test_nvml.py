"""cchet.platform.nvml against the SIMULATED NVML serving NVIDIA's recorded Hopper evidence."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from cchet.errors import DeviceUnavailable, VerificationError
from cchet.platform.fake_nvml import FakeGpu, FakeNvml
from cchet.platform.nvml import Nvml
from tests.conftest import fixture_path

# The request nonce of nvidia_attestation_sdk/unit_testdata/hopperAttestationReport.txt (MANIFEST.md).
RECORDED_NONCE = bytes.fromhex("5bb22e377702d4e1e8215a903ba094826b9ac7f731dee1fe8102958bf2840aca")


def hopper(**kw: bool) -> FakeNvml:
    return FakeNvml.from_evidence(
        fixture_path("nvidia_attestation_sdk/unit_testdata/hopperAttestationReport.txt"),
        fixture_path("nvidia_attestation_sdk/unit_testdata/hopperCertChain.txt"),
        count=2,
        **kw,
    )


def test_cc_state_ready_memory_threshold() -> None:
    fake = hopper()
    with Nvml(module=fake) as nvml:
        assert nvml.gpu_count() == 2
        state = nvml.cc_state()
        assert (
            state is not None and state.enabled and state.environment == "production" and not state.devtools
        )
        caps = nvml.cc_capabilities()
        assert caps is not None and caps.gpus_capable and caps.cpu == "intel-tdx"
        assert nvml.ready() is True
        assert nvml.key_rotation_threshold() == 60
        g = nvml.gpu(1)
        assert g.memory_protected and "SIMULATED" in g.name
    assert fake.initialised == 0  # shut down on exit


def test_attestation_report_with_the_recorded_nonce_verifies_with_the_leaf() -> None:
    with Nvml(module=hopper()) as nvml:
        r = nvml.attestation_report(0, RECORDED_NONCE)
        chain = nvml.certificate_chain(0)
    raw = bytes.fromhex(
        fixture_path("nvidia_attestation_sdk/unit_testdata/hopperAttestationReport.txt").read_text().strip()
    )
    assert r.report == raw and r.cec_report is None
    assert len(chain.attestation) == 5 and chain.device == ()
    leaf = x509.load_der_x509_certificate(chain.attestation[0])
    assert "GH100" in leaf.subject.rfc4514_string()
    sig = r.report[-96:]
    der = encode_dss_signature(int.from_bytes(sig[:48], "big"), int.from_bytes(sig[48:], "big"))
    key = leaf.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(der, r.report[:-96], ec.ECDSA(hashes.SHA384()))


def test_report_without_the_callers_nonce_is_rejected() -> None:
    with Nvml(module=hopper()) as nvml:
        with pytest.raises(VerificationError, match="nonce"):
            nvml.attestation_report(0, bytes(32))
        with pytest.raises(ValueError):
            nvml.attestation_report(0, b"short")
        with pytest.raises(ValueError):
            nvml.gpu(2)


def test_cc_off_and_no_cc_support() -> None:
    with Nvml(module=FakeNvml(gpus=[FakeGpu()], cc_enabled=False)) as nvml:
        state = nvml.cc_state()
        assert state is not None and not state.enabled
        assert not nvml.gpu(0).memory_protected
    with Nvml(module=FakeNvml(gpus=[FakeGpu()], supports_cc=False)) as nvml:
        assert nvml.cc_state() is None and nvml.ready() is None and nvml.key_rotation_threshold() is None
        assert nvml.gpu(0).protected_memory_kib is None


def test_no_driver_is_device_unavailable() -> None:
    with pytest.raises(DeviceUnavailable, match="NVIDIA driver"), Nvml(module=FakeNvml(available=False)):
        pass


def test_use_outside_context_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="context manager"):
        Nvml(module=FakeNvml()).gpu_count()
