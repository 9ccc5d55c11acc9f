"""Simulated NVIDIA GPU attestation reports: SPDM 1.1 GET_MEASUREMENTS request + signed MEASUREMENTS response.

SIMULATED EVIDENCE PROTECTS NOTHING (see :mod:`cchet.attest.simulate.authority`). The layout is that of a
Hopper report from NVML: 64 SHA-384 measurement blocks, NVIDIA opaque data (driver and VBIOS versions,
board, chip SKU, project, FWID, ...) and an ECDSA P-384 signature r||s over SHA-384 of request || response
(up to the signature) by the device leaf, whose certificate carries the same FWID.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Mapping

from cchet.attest.formats.spdm import (
    OPAQUE_BOARD_ID,
    OPAQUE_CHIP_SKU,
    OPAQUE_DRIVER_VERSION,
    OPAQUE_FWID,
    OPAQUE_PROJECT,
    OPAQUE_PROJECT_SKU,
    OPAQUE_VBIOS_VERSION,
    MeasurementBlock,
    OpaqueField,
    SpdmReport,
    SpdmRequest,
    SpdmResponse,
)
from cchet.attest.rawsig import raw_from_der
from cchet.attest.simulate.authority import SimulatedAuthority

__all__ = ["SIM_DRIVER_VERSION", "SIM_VBIOS_VERSION", "default_gpu_measurements", "simulate_spdm_report"]

SIM_DRIVER_VERSION = "550.90.07"
SIM_VBIOS_VERSION = "96.00.9F.00.01"


def default_gpu_measurements() -> dict[int, bytes]:
    """64 fixed simulated measurements, indices 1..64."""
    return {i: hashlib.sha384(f"cchet SIMULATED GPU measurement {i}".encode()).digest() for i in range(1, 65)}


def _vbios_bytes(version: str) -> bytes:
    digits = version.replace(".", "")
    if len(digits) != 10:
        raise ValueError("vbios_version must look like 96.00.9F.00.01")
    return int(digits[:8], 16).to_bytes(4, "little") + bytes((int(digits[8:], 16), 0, 0, 0))


def simulate_spdm_report(
    authority: SimulatedAuthority,
    *,
    nonce: bytes,
    measurements: Mapping[int, bytes] | None = None,
    driver_version: str = SIM_DRIVER_VERSION,
    vbios_version: str = SIM_VBIOS_VERSION,
    project: str = "1010",
    project_sku: str = "0200",
    chip_sku: str = "882",
) -> tuple[SpdmReport, bytes]:
    """A SIMULATED GPU report answering request ``nonce`` (exactly 32 bytes), and the PEM device chain.

    Raises ``ValueError`` for a wrong-sized nonce or measurement, or a malformed VBIOS version.
    """
    if len(nonce) != 32:
        raise ValueError("nonce must be exactly 32 bytes")
    meas = dict(measurements) if measurements is not None else default_gpu_measurements()
    blocks = []
    for index in sorted(meas):
        if len(meas[index]) != 48:
            raise ValueError("GPU measurements are 48-byte SHA-384 values")
        blocks.append(MeasurementBlock(index, 1, 1, meas[index]))
    opaque = (
        OpaqueField(OPAQUE_VBIOS_VERSION, _vbios_bytes(vbios_version)),
        OpaqueField(OPAQUE_BOARD_ID, struct.pack("<I", 0x04A1)),
        OpaqueField(OPAQUE_CHIP_SKU, chip_sku.encode().ljust(9, b"\0")),
        OpaqueField(OPAQUE_PROJECT, project.encode().ljust(5, b"\0")),
        OpaqueField(OPAQUE_PROJECT_SKU, project_sku.encode().ljust(5, b"\0")),
        OpaqueField(OPAQUE_DRIVER_VERSION, driver_version.encode() + b"\0"),
        OpaqueField(OPAQUE_FWID, authority.nvidia_fwid),
    )
    request = SpdmRequest(version=0x11, param1=1, param2=0xFF, nonce=bytes(nonce), slot_id=0)
    unsigned = SpdmResponse(0x11, 0, 0, tuple(blocks), os.urandom(32), opaque, b"")
    message = request.to_bytes() + unsigned.unsigned_bytes()
    sig = raw_from_der(authority.sign("nvidia_leaf", message), 48)
    response = SpdmResponse(0x11, 0, 0, tuple(blocks), unsigned.nonce, opaque, sig)
    return SpdmReport(request, response), authority.pem("nvidia_leaf", "nvidia_root")
