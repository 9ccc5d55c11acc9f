"""NVIDIA GPUs and their confidential-computing (CC) state through NVML (``pynvml``, imported lazily).

:class:`Nvml` wraps the NVML calls cchet needs: the system CC state and capabilities, the GPUs' ready
state ("accepting client requests"), per-GPU protected memory, the key-rotation threshold, and the
evidence for attestation (an SPDM attestation report over a caller nonce, and the certificate chains).
It interprets nothing beyond NVML's own fields; verifying evidence is :mod:`cchet.attest`'s job.

The NVML module is injected (``Nvml(module=...)``), so tests pass the SIMULATED
:class:`~cchet.platform.fake_nvml.FakeNvml`, which serves real NVIDIA evidence bytes from fixtures.

Raises :class:`~cchet.DeviceUnavailable` (naming the fix) when pynvml or the NVIDIA driver's NVML library
is missing, ``ValueError`` for a bad GPU index or nonce, and :class:`~cchet.VerificationError` when a
report does not carry the caller's nonce.
"""

from __future__ import annotations

import hmac
import importlib
from dataclasses import dataclass
from types import ModuleType, TracebackType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from cchet.errors import DeviceUnavailable, VerificationError

__all__ = [
    "NONCE_SIZE",
    "AttestationReport",
    "CcCapabilities",
    "CcState",
    "CertificateChain",
    "GpuInfo",
    "Nvml",
]

NONCE_SIZE = 32
# The SPDM GET_MEASUREMENTS request that leads a report: version, code, params, then the nonce.
_REQUEST_NONCE = slice(4, 4 + NONCE_SIZE)

_ENVIRONMENTS = {0: "unavailable", 1: "simulation", 2: "production"}
_CPU_CAPS = {0: "none", 1: "amd-sev", 2: "intel-tdx", 3: "amd-sev-snp", 4: "amd-snp-vtom"}
_MULTI_GPU = {0: "none", 1: "protected-pcie", 2: "nvle"}


@dataclass(frozen=True, slots=True)
class CcState:
    """System-wide CC state: ``enabled`` is NVML's CC feature flag; ``environment`` is
    ``"production"``, ``"simulation"`` or ``"unavailable"``; ``devtools`` means debugging is allowed
    (which gives up confidentiality)."""

    enabled: bool
    environment: str
    devtools: bool


@dataclass(frozen=True, slots=True)
class CcCapabilities:
    """Whether the GPUs are CC capable, and which CPU TEE NVML sees (``"none"``, ``"intel-tdx"``, ...)."""

    gpus_capable: bool
    cpu: str


@dataclass(frozen=True, slots=True)
class GpuInfo:
    """One GPU. ``protected_memory_kib`` is None when NVML cannot say (no CC support)."""

    index: int
    name: str
    uuid: str
    protected_memory_kib: int | None
    unprotected_memory_kib: int | None

    @property
    def memory_protected(self) -> bool:
        """True only when NVML reports protected (CC) memory on this GPU."""
        return bool(self.protected_memory_kib)


@dataclass(frozen=True, slots=True)
class AttestationReport:
    """The GPU's SPDM evidence: the GET_MEASUREMENTS request (with ``nonce``) and the signed response."""

    nonce: bytes
    report: bytes
    cec_report: bytes | None


@dataclass(frozen=True, slots=True)
class CertificateChain:
    """DER certificates, leaf first: ``attestation`` signs reports; ``device`` is the GPU identity chain."""

    attestation: tuple[bytes, ...]
    device: tuple[bytes, ...]


def _pem_chain(raw: bytes) -> tuple[bytes, ...]:
    text = bytes(raw).split(b"\x00", 1)[0]
    if b"-----BEGIN" not in text:
        return (text,) if text else ()
    return tuple(c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(text))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Nvml:
    """An NVML session (``with Nvml() as nvml: ...``); ``module`` defaults to ``pynvml``."""

    def __init__(self, module: Any = None) -> None:
        self._module = module
        self._nv: Any = None

    def __enter__(self) -> Nvml:
        nv = self._module
        if nv is None:
            try:
                nv = importlib.import_module("pynvml")
            except ImportError as e:
                raise DeviceUnavailable("pynvml is not installed: pip install nvidia-ml-py") from e
        try:
            nv.nvmlInit()
        except nv.NVMLError as e:
            raise DeviceUnavailable(
                f"NVML is unavailable ({e}): no NVIDIA driver here; install it (libnvidia-ml.so)"
            ) from e
        self._nv = nv
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if self._nv is not None:
            self._nv.nvmlShutdown()
            self._nv = None

    @property
    def _api(self) -> Any:
        if self._nv is None:
            raise RuntimeError("use Nvml as a context manager: with Nvml() as nvml: ...")
        return self._nv

    def _optional(self, fn: str, *args: object) -> Any:
        """Call an NVML function that a GPU or driver without CC may not support; None then."""
        nv = self._api
        try:
            return getattr(nv, fn)(*args)
        except (nv.NVMLError, AttributeError):
            return None

    @property
    def module(self) -> ModuleType | Any:
        return self._api

    def driver_version(self) -> str:
        return _text(self._api.nvmlSystemGetDriverVersion())

    def gpu_count(self) -> int:
        return int(self._api.nvmlDeviceGetCount())

    def _handle(self, index: int) -> Any:
        if not 0 <= index < self.gpu_count():
            raise ValueError(f"GPU index {index} is out of range (0..{self.gpu_count() - 1})")
        return self._api.nvmlDeviceGetHandleByIndex(index)

    def gpu(self, index: int) -> GpuInfo:
        h = self._handle(index)
        mem = self._optional("nvmlDeviceGetConfComputeMemSizeInfo", h)
        return GpuInfo(
            index=index,
            name=_text(self._api.nvmlDeviceGetName(h)),
            uuid=_text(self._api.nvmlDeviceGetUUID(h)),
            protected_memory_kib=None if mem is None else int(mem.protectedMemSizeKib),
            unprotected_memory_kib=None if mem is None else int(mem.unprotectedMemSizeKib),
        )

    def gpus(self) -> list[GpuInfo]:
        return [self.gpu(i) for i in range(self.gpu_count())]

    def cc_state(self) -> CcState | None:
        """The system CC state; None when the driver has no CC support."""
        s = self._optional("nvmlSystemGetConfComputeState")
        if s is None:
            return None
        return CcState(
            enabled=int(s.ccFeature) == 1,
            environment=_ENVIRONMENTS.get(int(s.environment), f"unknown({s.environment})"),
            devtools=int(s.devToolsMode) == 1,
        )

    def cc_capabilities(self) -> CcCapabilities | None:
        c = self._optional("nvmlSystemGetConfComputeCapabilities")
        if c is None:
            return None
        return CcCapabilities(
            gpus_capable=int(c.gpusCaps) == 1, cpu=_CPU_CAPS.get(int(c.cpuCaps), f"unknown({c.cpuCaps})")
        )

    def ready(self) -> bool | None:
        """Whether the GPUs accept work (CC "ready state", set after attestation); None if unsupported."""
        r = self._optional("nvmlSystemGetConfComputeGpusReadyState")
        return None if r is None else int(r) == 1

    def key_rotation_threshold(self) -> int | None:
        """The driver's key-rotation threshold, an attacker advantage of 2^-N: returns N (None if unknown)."""
        t = self._optional("nvmlSystemGetConfComputeKeyRotationThresholdInfo")
        return None if t is None else int(t.attackerAdvantage)

    def attestation_report(self, index: int, nonce: bytes) -> AttestationReport:
        """GPU ``index``'s SPDM report over the caller's 32-byte ``nonce`` (fresh per request).

        Raises ``ValueError`` for a nonce of another size, :class:`~cchet.VerificationError` when the
        report's request does not carry ``nonce`` (a replayed or substituted report).
        """
        if not isinstance(nonce, bytes) or len(nonce) != NONCE_SIZE:
            raise ValueError(f"nonce must be {NONCE_SIZE} bytes")
        r = self._api.nvmlDeviceGetConfComputeGpuAttestationReport(self._handle(index), nonce)
        report = bytes(r.attestationReport)[: int(r.attestationReportSize)]
        if not hmac.compare_digest(report[_REQUEST_NONCE], nonce):
            raise VerificationError([f"GPU {index} attestation report does not carry the caller's nonce"])
        cec = bytes(r.cecAttestationReport)[: int(r.cecAttestationReportSize)]
        return AttestationReport(
            nonce=nonce, report=report, cec_report=cec if int(r.isCecAttestationReportPresent) else None
        )

    def certificate_chain(self, index: int) -> CertificateChain:
        """GPU ``index``'s certificate chains as DER, leaf first (unverified: see :mod:`cchet.attest`)."""
        c = self._api.nvmlDeviceGetConfComputeGpuCertificate(self._handle(index))
        return CertificateChain(
            attestation=_pem_chain(bytes(c.attestationCertChain)[: int(c.attestationCertChainSize)]),
            device=_pem_chain(bytes(c.certChain)[: int(c.certChainSize)]),
        )
