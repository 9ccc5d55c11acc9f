"""The vendor roots cchet trusts, pinned by the SHA-256 of their DER encoding.

A chain verifies to a pinned root when its last certificate is self-signed and hashes to one of these
fingerprints; the certificate itself comes with the evidence or its collateral (Intel quotes and NVIDIA
chains carry their root; AMD's ARK comes with the ASK from the report's certificate table, the KDS or the
collateral cache). Fingerprints were computed from the roots the vendors publish and that go-tdx-guest,
go-sev-guest, virtee/sev and NVIDIA's verifiers embed.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AMD_ARKS", "AMD_INTERMEDIATES", "INTEL_SGX_ROOT", "NVIDIA_DEVICE_ROOT", "NVIDIA_RIM_ROOT", "PinnedRoot"]


@dataclass(frozen=True)
class PinnedRoot:
    """A vendor root: its vendor, a name for messages, and the SHA-256 of its DER (lowercase hex)."""

    vendor: str
    name: str
    sha256: str


INTEL_SGX_ROOT = PinnedRoot(
    "intel", "Intel SGX Root CA", "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"
)

AMD_ARKS = {
    "Milan": PinnedRoot("amd", "ARK-Milan", "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd"),
    "Genoa": PinnedRoot("amd", "ARK-Genoa", "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1"),
    "Turin": PinnedRoot("amd", "ARK-Turin", "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a"),
}
"""Per product: the AMD Root Key that signs both the ASK (VCEK chain) and the ASVK (VLEK chain)."""

AMD_INTERMEDIATES = {
    "5464738c1546aed5f2cecf1dc98c5c960a92e8913238a61711bc90ec6e828521": ("Genoa", "vcek"),
    "197e610743a917d6b9bb982a5a9226ccc0a15b611be0619e626aca9151457372": ("Genoa", "vlek"),
    "67d303bd3905fd38db8b20e0793699870e7fa612eaad5dec358293fd8c0bac1b": ("Milan", "vcek"),
    "c5e081f59b7efab1fe2f8b505e159704e72f29cab7ef7cf628a05a42439082f5": ("Milan", "vlek"),
    "5b77ef5fe7a7a004fd9032668fba9d0fda22f88c4442069a479636a6ae3b3185": ("Turin", "vcek"),
    "104e10a8bd060a3c20a434261a57d0588fd65a88915b4f65b08bdecaf8df1a3c": ("Turin", "vlek"),
}
"""The ASK (``vcek``) and ASVK (``vlek``) of each product, by fingerprint: which key type each may issue."""

NVIDIA_DEVICE_ROOT = PinnedRoot(
    "nvidia", "NVIDIA Device Identity CA", "102bf659d5419614c9d8e6aecebc80454eb26b1df6a769ac720b9a690b167b48"
)
NVIDIA_RIM_ROOT = PinnedRoot(
    "nvidia-rim", "NVIDIA CoRIM signing Root CA", "12977b5115acb0381179279fffeb5a8c4d264971ebb32298023a465fa41df5d1"
)

HYGON_HRK = PinnedRoot(
    "hygon", "Hygon Root Key (HRK)", "296efa97580464aca0ab5eefe42199ee05862182508d1629f29cf4dc175b10cd"
)
"""The Hygon Root Key certificate (Hygon's CA format, 832 bytes, https://cert.hygon.cn/hrk): SHA-256 of the
``hrk.cert`` trustee and csv-rs compile in. It self-signs with SM2/SM3 (ID ``HYGON-SSD-HRK``) and signs each HSK."""
