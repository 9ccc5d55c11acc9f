"""TPM 2.0 quotes: the TPMS_ATTEST structure a vTPM signs, with its PCR selection, and the quote as evidence.

Layouts from the TPM 2.0 Library specification, Part 2 (Structures): every integer is big-endian; a
``TPM2B_*`` is a u16 size and that many bytes. A quote's TPMS_ATTEST is::

    magic            u32   TPM_GENERATED_VALUE 0xff544347
    type             u16   TPM_ST_ATTEST_QUOTE 0x8018
    qualifiedSigner  TPM2B_NAME     at most sizeof(TPMU_NAME) = 66 bytes
    extraData        TPM2B_DATA     at most sizeof(TPMT_HA) = 66 bytes: the caller's qualifying data (nonce)
    clockInfo        u64 clock, u32 resetCount, u32 restartCount, u8 safe (TPMI_YES_NO: 0 or 1)
    firmwareVersion  u64
    attested.quote   TPML_PCR_SELECTION (u32 count <= 16, then per bank: u16 hash, u8 sizeofSelect <= 32,
                     that many bitmap bytes, PCR i at byte i/8 bit i%8), TPM2B_DIGEST pcrDigest (<= 64 bytes)

and nothing after it. Parsing checks these sizes, the magic, the type, the hash algorithm ids and the
``safe`` flag, and nothing else: it verifies no signature and no digest (that is
:mod:`cchet.attest.tees.azure.verify`). ``to_bytes`` is the exact inverse.

There is no maintained pure-Python TPM library installable from wheels (``tpm2-pytss`` ships only a source
distribution that needs the C TPM2 software stack to build), and the verifier needs only these few
structures, so they are parsed here, tightly (docs/tees/azure.md).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cchet.errors import EvidenceFormatError

__all__ = [
    "HASH_ALGORITHMS",
    "TPM_ALG_SHA256",
    "TPM_GENERATED_VALUE",
    "TPM_ST_ATTEST_QUOTE",
    "PcrBank",
    "TpmQuote",
    "TpmsAttest",
    "pcr_bitmap",
    "parse_tpms_attest",
]

TPM_GENERATED_VALUE = 0xFF544347
TPM_ST_ATTEST_QUOTE = 0x8018
TPM_ALG_SHA256 = 0x000B
HASH_ALGORITHMS = {
    0x0004: ("sha1", 20),
    0x000B: ("sha256", 32),
    0x000C: ("sha384", 48),
    0x000D: ("sha512", 64),
    0x0012: ("sm3_256", 32),
    0x0027: ("sha3_256", 32),
    0x0028: ("sha3_384", 48),
    0x0029: ("sha3_512", 64),
}
"""TPM_ALG_ID of every hash a PCR bank or a TPMI_ALG_HASH may name: (name, digest size)."""
MAX_NAME = 66  # sizeof(TPMU_NAME): a TPMT_HA with the largest digest (SHA-512)
MAX_DATA = 66  # sizeof(TPMT_HA)
MAX_DIGEST = 64  # sizeof(TPMU_HA)
MAX_BANKS = 16  # HASH_COUNT bound: no TPM implements more hash algorithms
MAX_SELECT = 32  # PCR_SELECT_MAX bound: 256 PCRs
MAX_SIGNATURE = 512  # RSA-4096
MAX_ATTEST = 2 + 4 + 2 + MAX_NAME + 2 + MAX_DATA + 17 + 8 + 4 + MAX_BANKS * (3 + MAX_SELECT) + 2 + MAX_DIGEST


@dataclass(frozen=True)
class PcrBank:
    """One TPMS_PCR_SELECTION: a hash algorithm and the bitmap of PCRs selected in its bank."""

    hash_alg: int
    bitmap: bytes

    @property
    def indices(self) -> tuple[int, ...]:
        """The selected PCR numbers, ascending."""
        return tuple(i for i in range(len(self.bitmap) * 8) if self.bitmap[i // 8] >> (i % 8) & 1)

    def to_bytes(self) -> bytes:
        return struct.pack(">HB", self.hash_alg, len(self.bitmap)) + self.bitmap


def pcr_bitmap(indices: tuple[int, ...] | range, size: int = 3) -> bytes:
    """The ``size``-byte selection bitmap of PCRs ``indices``. Raises ``ValueError`` for a PCR beyond it."""
    out = bytearray(size)
    for i in indices:
        if not 0 <= i < size * 8:
            raise ValueError(f"PCR {i} does not fit a {size}-byte selection")
        out[i // 8] |= 1 << (i % 8)
    return bytes(out)


@dataclass(frozen=True)
class TpmsAttest:
    """A TPMS_ATTEST of type quote (see the module docstring). ``extra_data`` is the qualifying data the
    caller passed to TPM2_Quote: for cchet, the 64-byte report data of DESIGN.md section 4."""

    qualified_signer: bytes
    extra_data: bytes
    clock: int
    reset_count: int
    restart_count: int
    safe: int
    firmware_version: int
    pcr_select: tuple[PcrBank, ...]
    pcr_digest: bytes

    def to_bytes(self) -> bytes:
        return b"".join(
            (
                struct.pack(">IH", TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE),
                struct.pack(">H", len(self.qualified_signer)),
                self.qualified_signer,
                struct.pack(">H", len(self.extra_data)),
                self.extra_data,
                struct.pack(
                    ">QIIBQ", self.clock, self.reset_count, self.restart_count, self.safe, self.firmware_version
                ),
                struct.pack(">I", len(self.pcr_select)),
                *(bank.to_bytes() for bank in self.pcr_select),
                struct.pack(">H", len(self.pcr_digest)),
                self.pcr_digest,
            )
        )


@dataclass(frozen=True)
class TpmQuote:
    """A quote as evidence carries it: the signed TPMS_ATTEST and the raw signature (for an RSA attestation
    key, the RSASSA-PKCS1-v1_5 signature bytes, as ``tpm2_quote -f plain`` writes them)."""

    attest: TpmsAttest
    signature: bytes

    @property
    def message(self) -> bytes:
        """The exact bytes the attestation key signed."""
        return self.attest.to_bytes()


class _Reader:
    """Big-endian reads over TPM bytes; a short read names the field and its offset."""

    def __init__(self, data: bytes, base: int, prefix: str) -> None:
        self.data = data
        self.pos = 0
        self.base = base
        self.prefix = prefix

    def fail(self, message: str, field: str, at: int | None = None) -> EvidenceFormatError:
        where = self.base + (self.pos if at is None else at)
        return EvidenceFormatError(message, offset=where, field=f"{self.prefix}.{field}")

    def take(self, n: int, field: str) -> bytes:
        if n > len(self.data) - self.pos:
            raise self.fail(f"needs {n} bytes, {len(self.data) - self.pos} remain", field)
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, size: int, field: str) -> int:
        return int.from_bytes(self.take(size, field), "big")

    def sized(self, limit: int, field: str) -> bytes:
        at = self.pos
        size = self.uint(2, f"{field}.size")
        if size > limit:
            raise self.fail(f"size {size} exceeds the largest allowed, {limit}", f"{field}.size", at)
        return self.take(size, field)


def parse_tpms_attest(data: bytes, *, base: int = 0, field: str = "tpms_attest") -> TpmsAttest:
    """Parses a quote's TPMS_ATTEST (the whole of ``data``); raises :class:`EvidenceFormatError` naming the
    offset (plus ``base``) and the field."""
    r = _Reader(bytes(data), base, field)
    if len(data) > MAX_ATTEST:
        raise r.fail(f"{len(data)} bytes is more than a quote's TPMS_ATTEST can hold ({MAX_ATTEST})", "size", 0)
    magic = r.uint(4, "magic")
    if magic != TPM_GENERATED_VALUE:
        raise r.fail(f"magic {magic:#010x} is not TPM_GENERATED_VALUE", "magic", 0)
    kind = r.uint(2, "type")
    if kind != TPM_ST_ATTEST_QUOTE:
        raise r.fail(f"type {kind:#06x} is not TPM_ST_ATTEST_QUOTE (0x8018)", "type", 4)
    signer = r.sized(MAX_NAME, "qualified_signer")
    extra = r.sized(MAX_DATA, "extra_data")
    clock = r.uint(8, "clock_info.clock")
    resets = r.uint(4, "clock_info.reset_count")
    restarts = r.uint(4, "clock_info.restart_count")
    at = r.pos
    safe = r.uint(1, "clock_info.safe")
    if safe not in (0, 1):
        raise r.fail(f"safe is {safe}, a TPMI_YES_NO is 0 or 1", "clock_info.safe", at)
    firmware = r.uint(8, "firmware_version")
    at = r.pos
    count = r.uint(4, "pcr_select.count")
    if count > MAX_BANKS:
        raise r.fail(f"{count} PCR banks, at most {MAX_BANKS}", "pcr_select.count", at)
    banks = []
    for i in range(count):
        at = r.pos
        alg = r.uint(2, f"pcr_select[{i}].hash")
        if alg not in HASH_ALGORITHMS:
            raise r.fail(f"{alg:#06x} is not a TPM hash algorithm", f"pcr_select[{i}].hash", at)
        at = r.pos
        size = r.uint(1, f"pcr_select[{i}].size_of_select")
        if size > MAX_SELECT:
            raise r.fail(f"size_of_select {size}, at most {MAX_SELECT}", f"pcr_select[{i}].size_of_select", at)
        banks.append(PcrBank(alg, r.take(size, f"pcr_select[{i}].pcr_select")))
    digest = r.sized(MAX_DIGEST, "pcr_digest")
    if r.pos != len(data):
        raise r.fail(f"{len(data) - r.pos} bytes after the structure", "trailing")
    return TpmsAttest(signer, extra, clock, resets, restarts, safe, firmware, tuple(banks), digest)
