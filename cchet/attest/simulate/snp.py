"""Simulated SEV-SNP attestation reports (version 3 by default, Genoa layout), signed by the simulated VCEK.

SIMULATED EVIDENCE PROTECTS NOTHING (see :mod:`cchet.attest.simulate.authority`). The report has the real
size, offsets and signature encoding: ECDSA P-384/SHA-384 over bytes [0, 0x2A0), r and s little-endian in
72-byte fields. The VCEK certificate is issued for the reported TCB and returned with ASK and ARK.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.hazmat.primitives import serialization

from cchet.attest.formats.snp import POLICY_DEBUG, POLICY_SMT, SnpReport
from cchet.attest.rawsig import raw_from_der
from cchet.attest.simulate.authority import SimulatedAuthority

__all__ = ["DEFAULT_POLICY", "SIM_SNP_TCB", "encode_genoa_tcb", "simulate_snp_report"]

DEFAULT_POLICY = POLICY_SMT | (1 << 17)  # SMT allowed; bit 17 is reserved and must be one
SIM_SNP_TCB = (9, 0, 21, 84)  # bootloader, tee, snp, microcode


def encode_genoa_tcb(tcb: tuple[int, int, int, int]) -> int:
    """TCB_VERSION for Milan/Genoa: boot loader, TEE, four reserved bytes, SNP, microcode."""
    bl, tee, snp, ucode = tcb
    return int.from_bytes(bytes((bl, tee, 0, 0, 0, 0, snp, ucode)), "little")


def simulate_snp_report(
    authority: SimulatedAuthority,
    *,
    report_data: bytes,
    measurement: bytes | None = None,
    host_data: bytes = bytes(32),
    policy: int = DEFAULT_POLICY,
    debug: bool = False,
    vmpl: int = 0,
    tcb: tuple[int, int, int, int] = SIM_SNP_TCB,
    guest_svn: int = 0,
    version: int = 3,
) -> tuple[SnpReport, bytes]:
    """A SIMULATED SNP report and its PEM chain (VCEK, ASK, ARK).

    ``report_data`` must be exactly 64 bytes, ``measurement`` 48 and ``host_data`` 32 (``ValueError``
    otherwise). ``debug`` sets policy bit 19. ``version`` 2 leaves out the CPUID fields (as Milan firmware
    before 1.55 does); 3 and later carry them (Genoa family 0x19, model 0x11).
    """
    if version < 2:
        raise ValueError("SNP report versions start at 2")
    if len(report_data) != 64:
        raise ValueError("report_data must be exactly 64 bytes")
    if measurement is None:
        measurement = hashlib.sha384(b"cchet SIMULATED SNP launch measurement").digest()
    if len(measurement) != 48 or len(host_data) != 32:
        raise ValueError("measurement must be 48 bytes and host_data 32 bytes")
    raw_tcb = encode_genoa_tcb(tcb)
    unsigned = SnpReport(
        version=version,
        guest_svn=guest_svn,
        policy=policy | (POLICY_DEBUG if debug else 0),
        family_id=bytes(16),
        image_id=bytes(16),
        vmpl=vmpl,
        signature_algo=1,
        current_tcb=raw_tcb,
        platform_info=1,
        flags=0,
        report_data=bytes(report_data),
        measurement=bytes(measurement),
        host_data=bytes(host_data),
        id_key_digest=bytes(48),
        author_key_digest=bytes(48),
        report_id=os.urandom(32),
        report_id_ma=b"\xff" * 32,
        reported_tcb=raw_tcb,
        cpuid_fam_id=0x19 if version >= 3 else 0,
        cpuid_mod_id=0x11 if version >= 3 else 0,
        cpuid_step=0x01 if version >= 3 else 0,
        chip_id=authority.amd_chip_id,
        committed_tcb=raw_tcb,
        current_build=21,
        current_minor=55,
        current_major=1,
        committed_build=21,
        committed_minor=55,
        committed_major=1,
        launch_tcb=raw_tcb,
        launch_mit_vector=0,
        current_mit_vector=0,
        signature_r=bytes(72),
        signature_s=bytes(72),
    )
    sig = raw_from_der(authority.sign("amd_vcek", unsigned.signed_bytes()), 72, byteorder="little")
    report = SnpReport(**{**unsigned.__dict__, "signature_r": sig[:72], "signature_s": sig[72:]})
    vcek = authority.issue_vcek(tcb, "Genoa").public_bytes(serialization.Encoding.PEM)
    return report, vcek + authority.pem("amd_ask", "amd_ark")
