"""The vendor collateral services and their URL paths: Intel PCS (v4), AMD KDS, NVIDIA RIM service, Hygon KDS.

Base URLs are data, so tests point them at a server on 127.0.0.1 that serves files at the real paths.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

__all__ = ["ServiceUrls"]


@dataclass(frozen=True)
class ServiceUrls:
    """Base URLs of the three services; every method returns one full URL."""

    intel_pcs: str = "https://api.trustedservices.intel.com"
    intel_root_crl: str = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
    amd_kds: str = "https://kdsintf.amd.com"
    nvidia_rim_service: str = "https://rim.attestation.nvidia.com"
    hygon_kds: str = "https://cert.hygon.cn"

    def intel_tcb_info(self, tee: str, fmspc: bytes) -> str:
        """``tee`` is ``"sgx"`` or ``"tdx"``; the response header TCB-Info-Issuer-Chain carries the chain."""
        return f"{self.intel_pcs}/{tee}/certification/v4/tcb?fmspc={fmspc.hex().upper()}"

    def intel_qe_identity(self, tee: str) -> str:
        """Header SGX-Enclave-Identity-Issuer-Chain carries the chain."""
        return f"{self.intel_pcs}/{tee}/certification/v4/qe/identity"

    def intel_pck_crl(self, ca: str) -> str:
        """``ca`` is ``"platform"`` or ``"processor"``; header SGX-PCK-CRL-Issuer-Chain carries the chain."""
        return f"{self.intel_pcs}/sgx/certification/v4/pckcrl?ca={ca}&encoding=der"

    def amd_chain(self, product: str, key: str) -> str:
        """ASK (``key="vcek"``) or ASVK (``"vlek"``) then ARK, PEM."""
        return f"{self.amd_kds}/{key}/v1/{product}/cert_chain"

    def amd_crl(self, product: str, key: str) -> str:
        return f"{self.amd_kds}/{key}/v1/{product}/crl"

    def amd_vcek(self, product: str, hw_id: bytes, tcb: dict[str, int]) -> str:
        """The VCEK for a chip id (64 bytes, 8 on Turin) at a reported TCB (``blSPL``, ``teeSPL``...)."""
        query = "&".join(f"{k}={v}" for k, v in tcb.items())
        return f"{self.amd_kds}/vcek/v1/{product}/{hw_id.hex()}?{query}"

    def nvidia_rim_url(self, rim_id: str) -> str:
        """JSON with the base64 RIM under ``rim``."""
        return f"{self.nvidia_rim_service}/v1/rim/{rim_id}"

    def hygon_hsk_cek(self, serial: str) -> str:
        """A Hygon chip's HSK (CA format, 832 bytes) then CEK (CSV format, 2084 bytes), by chip serial number."""
        return f"{self.hygon_kds}/hsk_cek?snumber={urllib.parse.quote(serial, safe='')}"

    def hygon_hrk(self) -> str:
        """The Hygon Root Key certificate (CA format, 832 bytes)."""
        return f"{self.hygon_kds}/hrk"
