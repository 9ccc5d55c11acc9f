"""SIMULATED Azure vTPM evidence in the real formats: an HCL report holding a simulated SEV-SNP report (or a
TDREPORT with a simulated TD quote for it), runtime data with a simulated RSA-2048 attestation key, and a
TPMS_ATTEST quote over 24 simulated SHA-256 PCRs signed by that key.

SIMULATED EVIDENCE PROTECTS NOTHING (see :mod:`cchet.attest.simulate.authority`). The hardware report is
signed by the authority's simulated AMD VCEK or Intel quoting enclave; the vTPM's attestation key (AK) and
endorsement key (EK) live in the subfolder ``azure-vtpm`` of the authority's key directory, created on first
use (atomically, mode 0700, files 0600) and shared by every process that opens the authority. The runtime
data's ``vm-configuration.vmUniqueId`` says SIMULATED, so the report's ``simulated`` property does too; the
AK keeps the real key id ``HCLAkPub`` (verifiers find the key by it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import struct
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cchet.attest.formats.dcap import TdReportBody
from cchet.attest.simulate.authority import SimulatedAuthority
from cchet.attest.simulate.keydir import create_key_dir, pkcs8_pem, write_private
from cchet.attest.tees.azure.hcl import RUNTIME_DATA_OFFSET, HclReport
from cchet.attest.tees.azure.report import AzureVtpmReport
from cchet.attest.tees.azure.runtime_data import AK_KID, EK_KID, jwk_of
from cchet.attest.tees.azure.tdreport import TdReport
from cchet.attest.tees.azure.tpm import TPM_ALG_SHA256, PcrBank, TpmQuote, TpmsAttest, pcr_bitmap

__all__ = [
    "KEY_SUBDIR",
    "SIM_FIRMWARE_VERSION",
    "SimulatedVtpm",
    "simulate_azure_report",
    "simulated_pcrs",
    "td_report_for",
]

KEY_SUBDIR = "azure-vtpm"
SIM_FIRMWARE_VERSION = 0x2020031200120003  # the Hyper-V vTPM's firmware version in real quotes
HCL_NV_SIZE = 2600  # the size of the vTPM's HCL report NV index
PCR_COUNT = 24
_AK_ATTRIBUTES = 0x00050072  # fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | restricted | sign
_LOCK = threading.Lock()
_OPENED: dict[Path, SimulatedVtpm] = {}


def _fill(tmp: Path) -> None:
    for name in ("ak", "ek"):
        write_private(tmp / f"{name}.key", pkcs8_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))


def _load(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} is not an RSA private key")
    return key


@dataclass(frozen=True)
class SimulatedVtpm:
    """The simulated vTPM's keys (see the module docstring)."""

    key_dir: Path
    ak: rsa.RSAPrivateKey
    ek: rsa.RSAPrivateKey

    @classmethod
    def open(cls, authority: SimulatedAuthority) -> SimulatedVtpm:
        """The keys beside ``authority``'s, created on first use. Raises ``OSError`` when the folder cannot be
        made or read, ``ValueError`` when a key file is not what this module wrote."""
        target = Path(authority.key_dir) / KEY_SUBDIR
        with _LOCK:
            found = _OPENED.get(target)
            if found is not None and (target / "ak.key").exists():
                return found
            if not (target / "ek.key").exists():
                create_key_dir(target, ".azure-vtpm-", "ek.key", _fill)
            vtpm = cls(target, _load(target / "ak.key"), _load(target / "ek.key"))
            _OPENED[target] = vtpm
            return vtpm

    def ak_name(self) -> bytes:
        """The AK's TPM name: nameAlg SHA-256 and the SHA-256 of its TPMT_PUBLIC."""
        n = self.ak.public_key().public_numbers().n.to_bytes(256, "big")
        public = struct.pack(">HHIH", 0x0001, TPM_ALG_SHA256, _AK_ATTRIBUTES, 0)  # RSA, SHA-256, no auth policy
        public += struct.pack(">HHHHI", 0x0010, 0x0014, TPM_ALG_SHA256, 2048, 0)  # no symmetric, RSASSA-SHA256
        public += struct.pack(">H", len(n)) + n
        return struct.pack(">H", TPM_ALG_SHA256) + hashlib.sha256(public).digest()

    def runtime_data(self, *, user_data: bytes) -> bytes:
        """Runtime data as the HCL writes it (compact JSON): the AK and EK JWKs, a VM configuration whose
        ``vmUniqueId`` says SIMULATED, and ``user-data`` (hex)."""
        doc = {
            "keys": [
                jwk_of(self.ak.public_key(), AK_KID, ["sign"]),
                jwk_of(self.ek.public_key(), EK_KID, ["encrypt"]),
            ],
            "vm-configuration": {
                "console-enabled": False,
                "secure-boot": True,
                "tpm-enabled": True,
                "vmUniqueId": f"SIMULATED-by-cchet-{uuid.uuid4()}",
            },
            "user-data": user_data.hex().upper(),
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    def quote(self, *, extra_data: bytes, pcrs: tuple[bytes, ...]) -> TpmQuote:
        """A TPM quote over ``pcrs`` (SHA-256 PCRs 0..n-1) qualified by ``extra_data``, signed by the AK."""
        attest = TpmsAttest(
            qualified_signer=self.ak_name(),
            extra_data=bytes(extra_data),
            clock=time.time_ns() // 1_000_000 % (1 << 32),
            reset_count=1,
            restart_count=0,
            safe=1,
            firmware_version=SIM_FIRMWARE_VERSION,
            pcr_select=(PcrBank(TPM_ALG_SHA256, pcr_bitmap(range(len(pcrs)))),),
            pcr_digest=hashlib.sha256(b"".join(pcrs)).digest(),
        )
        return self.sign(attest)

    def sign(self, attest: TpmsAttest) -> TpmQuote:
        """``attest`` signed by the AK (RSASSA-PKCS1-v1_5, SHA-256), as the vTPM signs quotes."""
        signature = self.ak.sign(attest.to_bytes(), padding.PKCS1v15(), hashes.SHA256())
        return TpmQuote(attest, signature)


def simulated_pcrs(overrides: Mapping[int, bytes] | None = None) -> tuple[bytes, ...]:
    """24 fixed SIMULATED SHA-256 PCR values (SHA-256 of ``cchet SIMULATED PCR<i>``), with ``overrides``.
    Raises ``ValueError`` for a PCR number outside 0..23 or a value that is not 32 bytes."""
    values = [hashlib.sha256(f"cchet SIMULATED PCR{i}".encode()).digest() for i in range(PCR_COUNT)]
    for index, value in (overrides or {}).items():
        if not 0 <= int(index) < PCR_COUNT or len(value) != 32:
            raise ValueError("pcrs: PCR numbers are 0..23 and values 32 bytes")
        values[int(index)] = bytes(value)
    return tuple(values)


def td_report_for(body: TdReportBody) -> TdReport:
    """The TDREPORT a TD with quote body ``body`` (:class:`~cchet.attest.formats.dcap.TdReportBody`) would
    have: the same measurements and report data; a random MAC (nobody outside the CPU can check it)."""
    unhashed = TdReport(
        report_type=bytes((0x81, 0, 0, 0)),
        cpu_svn=bytes(16),
        tee_tcb_info_hash=bytes(48),
        tee_info_hash=bytes(48),
        report_data=body.report_data,
        mac=os.urandom(32),
        tcb_valid=bytes.fromhex("ff01030000000000"),
        tee_tcb_svn=body.tee_tcb_svn,
        mr_seam=body.mr_seam,
        mr_signer_seam=body.mr_signer_seam,
        seam_attributes=body.seam_attributes,
        tee_tcb_svn2=body.tee_tcb_svn2 or bytes(16),
        td_attributes=body.td_attributes,
        xfam=body.xfam,
        mr_td=body.mr_td,
        mr_config_id=body.mr_config_id,
        mr_owner=body.mr_owner,
        mr_owner_config=body.mr_owner_config,
        rtmrs=body.rtmrs,
        servtd_hash=body.mr_service_td or bytes(48),
    )
    return dataclasses.replace(
        unhashed,
        tee_tcb_info_hash=hashlib.sha384(unhashed.tee_tcb_info()).digest(),
        tee_info_hash=hashlib.sha384(unhashed.td_info()).digest(),
    )


def _padding(runtime_data: bytes) -> bytes:
    return bytes(max(0, HCL_NV_SIZE - RUNTIME_DATA_OFFSET - len(runtime_data)))


def simulate_azure_report(
    authority: SimulatedAuthority,
    kind: str,
    *,
    report_data: bytes,
    pcrs: Mapping[int, bytes] | None = None,
    runtime_data: bytes | None = None,
    **hardware: Any,
) -> tuple[AzureVtpmReport, bytes]:
    """SIMULATED ``kind`` (``az-snp``, ``az-tdx``) evidence whose TPM quote carries ``report_data`` (1..64
    bytes; cchet's transcript is 64) as its qualifying data, and the certificates that go with it (SNP: ASK and
    ARK, PEM; the VCEK is in the report; TDX: none, the TD quote carries its chain).

    ``pcrs`` overrides simulated PCR values by number; ``runtime_data`` replaces the runtime data (default: the
    simulated AK and EK, ``user-data`` = ``report_data``); ``hardware`` goes to
    :func:`~cchet.attest.simulate.snp.simulate_snp_report` (``measurement``, ``host_data``, ``policy``,
    ``debug``, ``vmpl``, ``tcb``...) or :func:`~cchet.attest.simulate.dcap.simulate_tdx_quote` (``mr_td``,
    ``rtmrs``, ``mr_config_id``, ``debug``...). The hardware report data is SHA-256 of the runtime data and 32
    zero bytes, as Azure's HCL makes it. Raises ``ValueError`` for a bad kind, size or field.
    """
    if kind not in ("az-snp", "az-tdx"):
        raise ValueError(f"kind must be az-snp or az-tdx, got {kind!r}")
    if not 0 < len(report_data) <= 64:
        raise ValueError("report_data must be 1..64 bytes (the TPM quote's qualifying data)")
    vtpm = SimulatedVtpm.open(authority)
    runtime = runtime_data if runtime_data is not None else vtpm.runtime_data(user_data=bytes(report_data))
    bound = hashlib.sha256(runtime).digest() + bytes(32)
    values = simulated_pcrs(pcrs)
    quote = vtpm.quote(extra_data=bytes(report_data), pcrs=values)
    if kind == "az-snp":
        from cchet.attest.formats.certchain import certificate_der
        from cchet.attest.simulate.snp import simulate_snp_report

        snp, chain = simulate_snp_report(authority, report_data=bound, **hardware)
        end = b"-----END CERTIFICATE-----\n"
        vcek_pem, _, rest = chain.partition(end)
        hcl = HclReport(1, 2, 0, snp, 1, runtime, _padding(runtime))
        return AzureVtpmReport(hcl, quote, values, vcek=certificate_der(vcek_pem + end, "vcek")), rest
    from cchet.attest.simulate.dcap import simulate_tdx_quote

    td_quote = simulate_tdx_quote(authority, report_data=bound, **hardware)
    assert isinstance(td_quote.body, TdReportBody)  # a TDX quote v4 always has one
    hcl = HclReport(2, 2, 0, td_report_for(td_quote.body), 1, runtime, _padding(runtime))
    return AzureVtpmReport(hcl, quote, values, td_quote=td_quote), b""
