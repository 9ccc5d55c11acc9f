"""NVIDIA GPU attestation reports: an SPDM 1.1 GET_MEASUREMENTS request followed by its MEASUREMENTS response.

Layouts per DMTF DSP0274 (SPDM 1.1) and NVIDIA's opaque-data convention (nvtrust ``local_gpu_verifier``):

- request, 37 bytes: version, code 0xE0, param1 (bit 0: signature requested), param2 (measurement operation),
  32-byte nonce, slot id;
- response: version, code 0x60, param1, param2, number of blocks, 24-bit record length, the measurement record
  (blocks of index, specification, size, then DMTF value type, value size and value), 32-byte responder nonce,
  16-bit opaque length, opaque data (NVIDIA: a list of type/size/value entries, little-endian), and a 96-byte
  ECDSA P-384 signature r||s (big-endian) over SHA-384 of everything before it.

NVML hands the report over in a fixed-size buffer; bytes after the signature are kept as ``padding`` so
``serialize`` is the exact inverse of ``parse_spdm_report``. Nothing here checks a signature.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cchet.attest.formats.cursor import Cursor
from cchet.errors import EvidenceFormatError

__all__ = [
    "OPAQUE_BOARD_ID",
    "OPAQUE_CHIP_SKU",
    "OPAQUE_DRIVER_VERSION",
    "OPAQUE_FWID",
    "OPAQUE_PROJECT",
    "OPAQUE_PROJECT_SKU",
    "OPAQUE_VBIOS_VERSION",
    "REQUEST_SIZE",
    "SIGNATURE_SIZE",
    "MeasurementBlock",
    "OpaqueField",
    "SpdmReport",
    "SpdmRequest",
    "SpdmResponse",
    "parse_spdm_report",
    "serialize_spdm_report",
]

REQUEST_SIZE = 37
SIGNATURE_SIZE = 96
GET_MEASUREMENTS = 0xE0
MEASUREMENTS = 0x60
OPAQUE_DRIVER_VERSION = 3
OPAQUE_VBIOS_VERSION = 6
OPAQUE_BOARD_ID = 14
OPAQUE_CHIP_SKU = 15
OPAQUE_PROJECT = 17
OPAQUE_PROJECT_SKU = 18
OPAQUE_FWID = 20


@dataclass(frozen=True)
class SpdmRequest:
    """GET_MEASUREMENTS: ``nonce`` is the requester's 32-byte challenge."""

    version: int
    param1: int
    param2: int
    nonce: bytes
    slot_id: int
    code: int = GET_MEASUREMENTS

    def to_bytes(self) -> bytes:
        return bytes((self.version, self.code, self.param1, self.param2)) + self.nonce + bytes((self.slot_id,))


@dataclass(frozen=True)
class MeasurementBlock:
    """One measurement block: DMTF value type and value (a 48-byte SHA-384 digest on NVIDIA GPUs)."""

    index: int
    specification: int
    value_type: int
    value: bytes

    def to_bytes(self) -> bytes:
        inner = struct.pack("<BH", self.value_type, len(self.value)) + self.value
        return struct.pack("<BBH", self.index, self.specification, len(inner)) + inner


@dataclass(frozen=True)
class OpaqueField:
    """One NVIDIA opaque-data entry."""

    field_type: int
    value: bytes

    def to_bytes(self) -> bytes:
        return struct.pack("<HH", self.field_type, len(self.value)) + self.value


@dataclass(frozen=True)
class SpdmResponse:
    """MEASUREMENTS response. ``signature`` is empty when the request did not ask for one."""

    version: int
    param1: int
    param2: int
    blocks: tuple[MeasurementBlock, ...]
    nonce: bytes
    opaque: tuple[OpaqueField, ...]
    signature: bytes
    code: int = MEASUREMENTS

    def unsigned_bytes(self) -> bytes:
        record = b"".join(b.to_bytes() for b in self.blocks)
        opaque = b"".join(f.to_bytes() for f in self.opaque)
        return (
            bytes((self.version, self.code, self.param1, self.param2, len(self.blocks)))
            + len(record).to_bytes(3, "little")
            + record
            + self.nonce
            + struct.pack("<H", len(opaque))
            + opaque
        )

    def to_bytes(self) -> bytes:
        return self.unsigned_bytes() + self.signature


@dataclass(frozen=True)
class SpdmReport:
    """A GPU attestation report: request, response and any trailing buffer padding."""

    request: SpdmRequest
    response: SpdmResponse
    padding: bytes = b""

    kind = "nvidia-gpu"

    def signed_bytes(self) -> bytes:
        """What the device key signs: the request and the response up to the signature."""
        return self.request.to_bytes() + self.response.unsigned_bytes()

    def to_bytes(self) -> bytes:
        return self.request.to_bytes() + self.response.to_bytes() + self.padding

    def opaque_value(self, field_type: int) -> bytes | None:
        for f in self.response.opaque:
            if f.field_type == field_type:
                return f.value
        return None

    def _text(self, field_type: int) -> str | None:
        raw = self.opaque_value(field_type)
        return None if raw is None else raw.split(b"\0", 1)[0].decode("ascii", "replace")

    @property
    def fwid(self) -> bytes | None:
        return self.opaque_value(OPAQUE_FWID)

    @property
    def driver_version(self) -> str | None:
        return self._text(OPAQUE_DRIVER_VERSION)

    @property
    def vbios_version(self) -> str | None:
        """Formatted as NVIDIA prints it, e.g. ``96.00.74.00.20``."""
        raw = self.opaque_value(OPAQUE_VBIOS_VERSION)
        if raw is None or len(raw) < 5:
            return None
        digits = f"{int.from_bytes(raw[:4], 'little'):08X}{raw[4]:02X}"
        return ".".join(digits[i : i + 2] for i in range(0, 10, 2))

    @property
    def project(self) -> str | None:
        return self._text(OPAQUE_PROJECT)

    @property
    def project_sku(self) -> str | None:
        return self._text(OPAQUE_PROJECT_SKU)

    @property
    def chip_sku(self) -> str | None:
        return self._text(OPAQUE_CHIP_SKU)

    @property
    def board_id(self) -> int | None:
        raw = self.opaque_value(OPAQUE_BOARD_ID)
        return None if raw is None else int.from_bytes(raw, "little")

    def measurements(self) -> dict[int, bytes]:
        """Measurement index -> value."""
        return {b.index: b.value for b in self.response.blocks}


def _parse_request(cur: Cursor) -> SpdmRequest:
    version = cur.u8("request.version")
    code = cur.u8("request.code")
    if code != GET_MEASUREMENTS:
        raise EvidenceFormatError(f"request code {code:#x} is not GET_MEASUREMENTS", offset=1, field="request.code")
    return SpdmRequest(
        version=version,
        param1=cur.u8("request.param1"),
        param2=cur.u8("request.param2"),
        nonce=cur.take(32, "request.nonce"),
        slot_id=cur.u8("request.slot_id"),
    )


def _parse_blocks(cur: Cursor, count: int) -> tuple[MeasurementBlock, ...]:
    blocks = []
    for i in range(count):
        index = cur.u8(f"measurement[{i}].index")
        spec = cur.u8(f"measurement[{i}].specification")
        size = cur.u16(f"measurement[{i}].size")
        inner = cur.sub(size, f"measurement[{i}].value")
        value_type = inner.u8(f"measurement[{i}].value_type")
        value_size = inner.u16(f"measurement[{i}].value_size")
        if value_size != inner.remaining:
            raise EvidenceFormatError(
                f"value size {value_size} does not fill the {size}-byte block",
                offset=inner.offset - 2,
                field=f"measurement[{i}].value_size",
            )
        blocks.append(MeasurementBlock(index, spec, value_type, inner.rest()))
    if cur.remaining:
        raise EvidenceFormatError(
            f"{cur.remaining} bytes left in the measurement record",
            offset=cur.offset,
            field="measurement_record",
        )
    return tuple(blocks)


def _parse_opaque(cur: Cursor) -> tuple[OpaqueField, ...]:
    fields = []
    while cur.remaining:
        t = cur.u16("opaque.type")
        size = cur.u16("opaque.size")
        fields.append(OpaqueField(t, cur.take(size, f"opaque[{t}]")))
    return tuple(fields)


def parse_spdm_report(data: bytes) -> SpdmReport:
    """Parses request + response (+ padding); raises :class:`EvidenceFormatError` naming offset and field."""
    cur = Cursor(data)
    request = _parse_request(cur)
    version = cur.u8("response.version")
    code_off = cur.offset
    code = cur.u8("response.code")
    if code != MEASUREMENTS:
        raise EvidenceFormatError(
            f"response code {code:#x} is not MEASUREMENTS", offset=code_off, field="response.code"
        )
    param1 = cur.u8("response.param1")
    param2 = cur.u8("response.param2")
    count = cur.u8("response.number_of_blocks")
    record_len = cur.u24("response.measurement_record_length")
    blocks = _parse_blocks(cur.sub(record_len, "response.measurement_record"), count)
    nonce = cur.take(32, "response.nonce")
    opaque_len = cur.u16("response.opaque_length")
    opaque = _parse_opaque(cur.sub(opaque_len, "response.opaque_data"))
    signature = cur.take(SIGNATURE_SIZE, "response.signature") if request.param1 & 1 else b""
    response = SpdmResponse(version, param1, param2, blocks, nonce, opaque, signature)
    return SpdmReport(request, response, cur.rest())


def serialize_spdm_report(report: SpdmReport) -> bytes:
    """The exact bytes of ``report``; the inverse of :func:`parse_spdm_report`."""
    return report.to_bytes()
