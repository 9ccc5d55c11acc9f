"""AMD SEV-SNP attestation reports (ATTESTATION_REPORT, 0x4A0 bytes), versions 2, 3 and newer.

Offsets per AMD's SEV-SNP firmware ABI specification (table "ATTESTATION_REPORT Structure"). The signature
is ECDSA P-384 with SHA-384 over bytes [0, 0x2A0); ``r`` and ``s`` are stored little-endian in 72-byte
fields. Version 3 added CPUID family, model and stepping at 0x188; version 5 the mitigation vectors at
0x1F8. Parsing checks the size and the reserved ranges of the version in hand; it verifies nothing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cchet.attest.formats.cursor import Cursor, require_zero
from cchet.errors import EvidenceFormatError

__all__ = [
    "REPORT_SIZE",
    "SIGNED_SIZE",
    "SnpReport",
    "SnpTcb",
    "decode_tcb",
    "parse_snp_report",
    "serialize_snp_report",
]

REPORT_SIZE = 0x4A0
SIGNED_SIZE = 0x2A0
POLICY_SMT = 1 << 16
POLICY_MIGRATE_MA = 1 << 18
POLICY_DEBUG = 1 << 19
POLICY_SINGLE_SOCKET = 1 << 20


@dataclass(frozen=True)
class SnpTcb:
    """A decoded TCB_VERSION. ``fmc`` exists on Turin and later only."""

    bootloader: int
    tee: int
    snp: int
    microcode: int
    fmc: int | None = None


def decode_tcb(raw: int, product: str | None) -> SnpTcb:
    """Splits a 64-bit TCB_VERSION. Turin moved the fields; Milan and Genoa share one layout."""
    b = raw.to_bytes(8, "little")
    if product == "Turin":
        return SnpTcb(bootloader=b[1], tee=b[2], snp=b[3], microcode=b[7], fmc=b[0])
    return SnpTcb(bootloader=b[0], tee=b[1], snp=b[6], microcode=b[7])


@dataclass(frozen=True)
class SnpReport:
    """A parsed SEV-SNP attestation report. ``signature_r``/``signature_s`` are 72-byte little-endian."""

    version: int
    guest_svn: int
    policy: int
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb: int
    platform_info: int
    flags: int
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    reported_tcb: int
    cpuid_fam_id: int
    cpuid_mod_id: int
    cpuid_step: int
    chip_id: bytes
    committed_tcb: int
    current_build: int
    current_minor: int
    current_major: int
    committed_build: int
    committed_minor: int
    committed_major: int
    launch_tcb: int
    launch_mit_vector: int
    current_mit_vector: int
    signature_r: bytes
    signature_s: bytes

    kind = "snp"

    @property
    def debug(self) -> bool:
        """Guest policy bit 19: debugging allowed."""
        return bool(self.policy & POLICY_DEBUG)

    @property
    def signing_key(self) -> str:
        """Which key signed: ``"vcek"``, ``"vlek"`` or ``"none"`` (flags bits 2..4)."""
        return {0: "vcek", 1: "vlek", 7: "none"}.get((self.flags >> 2) & 7, "reserved")

    @property
    def product(self) -> str | None:
        """Milan, Genoa or Turin from the CPUID fields (v3+); None when the report does not say."""
        if self.version < 3:
            return None
        if self.cpuid_fam_id == 0x19:
            return "Milan" if self.cpuid_mod_id < 0x10 else "Genoa"
        if self.cpuid_fam_id == 0x1A:
            return "Turin"
        return None

    def tcb(self, which: str = "reported") -> SnpTcb:
        """One of the TCB versions (reported, current, committed, launch), decoded for the product."""
        return decode_tcb(getattr(self, f"{which}_tcb"), self.product)

    def signed_bytes(self) -> bytes:
        return self.to_bytes()[:SIGNED_SIZE]

    def to_bytes(self) -> bytes:
        out = bytearray(REPORT_SIZE)
        struct.pack_into("<IIQ", out, 0, self.version, self.guest_svn, self.policy)
        out[0x10:0x30] = self.family_id + self.image_id
        struct.pack_into(
            "<IIQQI",
            out,
            0x30,
            self.vmpl,
            self.signature_algo,
            self.current_tcb,
            self.platform_info,
            self.flags,
        )
        out[0x50:0x180] = b"".join(
            (
                self.report_data,
                self.measurement,
                self.host_data,
                self.id_key_digest,
                self.author_key_digest,
                self.report_id,
                self.report_id_ma,
            )
        )
        struct.pack_into("<QBBB", out, 0x180, self.reported_tcb, self.cpuid_fam_id, self.cpuid_mod_id, self.cpuid_step)
        out[0x1A0:0x1E0] = self.chip_id
        struct.pack_into(
            "<QBBBxBBBxQ",
            out,
            0x1E0,
            self.committed_tcb,
            self.current_build,
            self.current_minor,
            self.current_major,
            self.committed_build,
            self.committed_minor,
            self.committed_major,
            self.launch_tcb,
        )
        struct.pack_into("<QQ", out, 0x1F8, self.launch_mit_vector, self.current_mit_vector)
        out[0x2A0 : 0x2A0 + 144] = self.signature_r + self.signature_s
        return bytes(out)


def _zero(cur: Cursor, n: int, field: str) -> None:
    off = cur.offset
    require_zero(cur.take(n, field), offset=off, field=field)


def parse_snp_report(data: bytes) -> SnpReport:
    """Parses a 1184-byte SEV-SNP report; raises :class:`EvidenceFormatError` naming the offset and field."""
    if len(data) != REPORT_SIZE:
        raise EvidenceFormatError(f"report is {len(data)} bytes, expected {REPORT_SIZE}", offset=0, field="report")
    cur = Cursor(data)
    version = cur.u32("version")
    if version < 2:
        raise EvidenceFormatError(f"unsupported report version {version}", offset=0, field="version")
    fields: dict[str, int | bytes] = {"version": version}
    fields["guest_svn"] = cur.u32("guest_svn")
    fields["policy"] = cur.u64("policy")
    fields["family_id"] = cur.take(16, "family_id")
    fields["image_id"] = cur.take(16, "image_id")
    fields["vmpl"] = cur.u32("vmpl")
    fields["signature_algo"] = cur.u32("signature_algo")
    fields["current_tcb"] = cur.u64("current_tcb")
    fields["platform_info"] = cur.u64("platform_info")
    fields["flags"] = cur.u32("flags")
    _zero(cur, 4, "reserved0")
    for name, size in (
        ("report_data", 64),
        ("measurement", 48),
        ("host_data", 32),
        ("id_key_digest", 48),
        ("author_key_digest", 48),
        ("report_id", 32),
        ("report_id_ma", 32),
    ):
        fields[name] = cur.take(size, name)
    fields["reported_tcb"] = cur.u64("reported_tcb")
    if version >= 3:
        fields["cpuid_fam_id"] = cur.u8("cpuid_fam_id")
        fields["cpuid_mod_id"] = cur.u8("cpuid_mod_id")
        fields["cpuid_step"] = cur.u8("cpuid_step")
        _zero(cur, 21, "reserved1")
    else:
        fields["cpuid_fam_id"] = fields["cpuid_mod_id"] = fields["cpuid_step"] = 0
        _zero(cur, 24, "reserved1")
    fields["chip_id"] = cur.take(64, "chip_id")
    fields["committed_tcb"] = cur.u64("committed_tcb")
    fields["current_build"] = cur.u8("current_build")
    fields["current_minor"] = cur.u8("current_minor")
    fields["current_major"] = cur.u8("current_major")
    _zero(cur, 1, "reserved2")
    fields["committed_build"] = cur.u8("committed_build")
    fields["committed_minor"] = cur.u8("committed_minor")
    fields["committed_major"] = cur.u8("committed_major")
    _zero(cur, 1, "reserved3")
    fields["launch_tcb"] = cur.u64("launch_tcb")
    if version >= 5:
        fields["launch_mit_vector"] = cur.u64("launch_mit_vector")
        fields["current_mit_vector"] = cur.u64("current_mit_vector")
    else:
        fields["launch_mit_vector"] = fields["current_mit_vector"] = 0
        _zero(cur, 16, "reserved4")
    _zero(cur, SIGNED_SIZE - cur.offset, "reserved4")
    fields["signature_r"] = cur.take(72, "signature.r")
    fields["signature_s"] = cur.take(72, "signature.s")
    _zero(cur, cur.remaining, "signature.reserved")
    return SnpReport(**fields)  # type: ignore[arg-type]


def serialize_snp_report(report: SnpReport) -> bytes:
    """The exact 1184 bytes of ``report``; the inverse of :func:`parse_snp_report`."""
    return report.to_bytes()
