"""The HCL report of an Azure confidential VM: the hardware report its paravisor (the HCL) obtained, and the
runtime data (a JSON document holding the vTPM's attestation key) whose SHA-256 that report binds.

The guest reads it from vTPM NV index 0x01400001. Layout (little-endian u32s)::

    0x000  header: signature "HCLA", version (1, 2), report_size (= 32 + 1184 + 20 + runtime data size),
           request_type, status, three reserved u32 (zero)
    0x020  hardware report slot, 1184 bytes: the SEV-SNP ATTESTATION_REPORT (all of it), or the 1024-byte
           TDREPORT_STRUCT followed by 160 zero bytes
    0x4C0  IGVM request data: data_size (= 20 + runtime data size), version (1), report_type (2: SNP, 4: TDX),
           report_data_hash_type (1: SHA-256, the only one supported), runtime data size
    0x4D4  the runtime data (UTF-8 JSON), then zero padding (the NV index is 2600 bytes)

The hardware report's report data starts with SHA-256 of the runtime data: for SNP the report's own
``report_data[0:32]``, for TDX the TD quote's (the TDREPORT is only MACed). Parsing checks the sizes, the
constants above and that reserved and padding bytes are zero; it verifies nothing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cchet.attest.formats.cursor import Cursor, require_zero
from cchet.attest.formats.snp import REPORT_SIZE, SnpReport, parse_snp_report
from cchet.attest.tees.azure.tdreport import TdReport, parse_td_report
from cchet.errors import EvidenceFormatError

__all__ = [
    "HCL_SIGNATURE",
    "MAX_HCL_SIZE",
    "REPORT_TYPE_SNP",
    "REPORT_TYPE_TDX",
    "RUNTIME_DATA_OFFSET",
    "HclReport",
    "parse_hcl_report",
]

HCL_SIGNATURE = b"HCLA"
HCL_VERSIONS = (1, 2)
HEADER_SIZE = 32
IGVM_SIZE = 20
IGVM_VERSION = 1
REPORT_TYPE_SNP = 2
REPORT_TYPE_TDX = 4
HASH_TYPE_SHA256 = 1
RUNTIME_DATA_OFFSET = HEADER_SIZE + REPORT_SIZE + IGVM_SIZE  # 0x4D4
MAX_HCL_SIZE = 16 * 1024
"""The largest HCL report accepted (the vTPM's NV index holds 2600 bytes; the runtime data is about 1.2 KB)."""


@dataclass(frozen=True)
class HclReport:
    """A parsed HCL report (see the module docstring). ``padding`` is the zero fill after the runtime data,
    kept so that :meth:`to_bytes` gives back the NV index's bytes exactly."""

    version: int
    request_type: int
    status: int
    hardware: SnpReport | TdReport
    igvm_version: int
    runtime_data: bytes
    padding: bytes = b""

    @property
    def report_type(self) -> int:
        """2 (SEV-SNP) or 4 (TDX)."""
        return REPORT_TYPE_SNP if isinstance(self.hardware, SnpReport) else REPORT_TYPE_TDX

    def to_bytes(self) -> bytes:
        size = len(self.runtime_data)
        slot = self.hardware.to_bytes()
        slot += bytes(REPORT_SIZE - len(slot))
        return b"".join(
            (
                HCL_SIGNATURE,
                struct.pack("<7I", self.version, RUNTIME_DATA_OFFSET + size, self.request_type, self.status, 0, 0, 0),
                slot,
                struct.pack("<5I", IGVM_SIZE + size, self.igvm_version, self.report_type, HASH_TYPE_SHA256, size),
                self.runtime_data,
                self.padding,
            )
        )


def _expect(cur: Cursor, field: str, allowed: tuple[int, ...], what: str) -> int:
    at = cur.offset
    value = cur.u32(field)
    if value not in allowed:
        raise EvidenceFormatError(f"{value} is not {what}", offset=at, field=field)
    return value


def parse_hcl_report(data: bytes, *, base: int = 0) -> HclReport:
    """Parses an HCL report; raises :class:`EvidenceFormatError` naming the offset (plus ``base``) and field."""
    if len(data) > MAX_HCL_SIZE:
        raise EvidenceFormatError(
            f"{len(data)} bytes, more than the {MAX_HCL_SIZE} an HCL report may have", offset=base, field="hcl_report"
        )
    cur = Cursor(data, base=base)
    if cur.take(4, "hcl_report.signature") != HCL_SIGNATURE:
        raise EvidenceFormatError(
            "not an HCL report (signature is not HCLA)", offset=base, field="hcl_report.signature"
        )
    version = _expect(cur, "hcl_report.version", HCL_VERSIONS, "a known HCL report version (1, 2)")
    size_at = cur.offset
    report_size = cur.u32("hcl_report.report_size")
    request_type = cur.u32("hcl_report.request_type")
    status = cur.u32("hcl_report.status")
    at = cur.offset
    require_zero(cur.take(12, "hcl_report.reserved"), offset=at, field="hcl_report.reserved")
    slot = cur.sub(REPORT_SIZE, "hcl_report.hardware_report")
    igvm_at = cur.offset
    data_size = cur.u32("hcl_report.igvm.data_size")
    igvm_version = _expect(cur, "hcl_report.igvm.version", (IGVM_VERSION,), "IGVM request data version 1")
    report_type = _expect(
        cur,
        "hcl_report.igvm.report_type",
        (REPORT_TYPE_SNP, REPORT_TYPE_TDX),
        "a hardware report type (2: SNP, 4: TDX)",
    )
    _expect(cur, "hcl_report.igvm.hash_type", (HASH_TYPE_SHA256,), "the SHA-256 hash type (1), the only one supported")
    runtime_size = cur.u32("hcl_report.igvm.variable_data_size")
    if data_size != IGVM_SIZE + runtime_size:
        raise EvidenceFormatError(
            f"data_size {data_size} != 20 + runtime data size {runtime_size}", offset=igvm_at, field="hcl_report.igvm"
        )
    if report_size != RUNTIME_DATA_OFFSET + runtime_size:
        raise EvidenceFormatError(
            f"report_size {report_size} != {RUNTIME_DATA_OFFSET} + runtime data size {runtime_size}",
            offset=size_at,
            field="hcl_report.report_size",
        )
    runtime_data = cur.take(runtime_size, "hcl_report.runtime_data")
    at = cur.offset
    padding = require_zero(cur.rest(), offset=at, field="hcl_report.padding")
    hardware: SnpReport | TdReport
    if report_type == REPORT_TYPE_SNP:
        slot_at = slot.offset
        try:
            hardware = parse_snp_report(slot.rest())
        except EvidenceFormatError as e:  # name the place inside the HCL report
            raise EvidenceFormatError(
                str(e).split(": ", 1)[-1], offset=slot_at + (e.offset or 0), field=f"hcl_report.snp.{e.field}"
            ) from None
    else:
        hardware = parse_td_report(slot, "hcl_report.td_report")
        at = slot.offset
        require_zero(slot.rest(), offset=at, field="hcl_report.td_report.unused")
    return HclReport(version, request_type, status, hardware, igvm_version, runtime_data, padding)
