"""Hygon CSV attestation reports: the 4116-byte wrapper ``magic[16] || flags u32 || data[4096]`` around a V1
(legacy) or V2 (extended) report.

The wrapper says the version: magic all zero, or ``ATTESTATION_EXT\\0`` with flags 0, is V1; ``ATTESTATION_EXT\\0``
with flags 1 is V2. ``data`` holds the tee-info, then the signer block (PEK certificate[2084], chip serial
number[64], reserved[32], MAC[32]), then zero padding to 4096 bytes. Integers are little-endian.

- V1 tee-info, 336 bytes: user_pubkey_digest[32], vm_id[16], vm_version[16], report_data[64], mnonce[16],
  measure[32], policy, sig_usage, sig_algo, anonce, signature r[72] s[72]. Every field from user_pubkey_digest to
  sig_algo is XOR-masked with the four bytes of ``anonce`` (little-endian, repeating from each field's start; all
  offsets are multiples of 4, so the whole range [0, 188) is masked alike). The signature covers bytes [0, 180)
  **as stored** (masked); ``anonce`` itself is outside it.
- V2 tee-info, 1168 bytes: the same first 176 bytes unmasked, then policy, sig_usage, sig_algo, build,
  rtmr_version u16, reserved0[14], rtmr0..rtmr4 (SM3, 32 bytes each; rtmr0 is the launch measurement),
  reserved1[656], signature. The signature covers bytes [0, 1024).

Field values here are as stored; :class:`CsvReport` gives the unmasked values (``report_data``, ``measurement``,
...). The firmware masks the V1 signer block (PEK and serial) too and MACs it with HMAC-SM3 keyed by the
guest's mnonce; the guest's attester checks and unmasks it (as csv-rs does), so evidence carries it in clear --
a masked block is recognised and unmasked here as well. Parsing checks the sizes, the magic and flags, and
nothing else (reserved bytes are kept: the signature covers those of the tee-info).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from cchet.attest.formats.cursor import Cursor
from cchet.errors import EvidenceFormatError

__all__ = [
    "DATA_SIZE",
    "MAGIC_EXT",
    "REPORT_SIZE",
    "SIGNED_SIZE",
    "CsvReport",
    "SignerBlock",
    "TeeInfo",
    "parse_csv_report",
]

MAGIC_EXT = b"ATTESTATION_EXT\0"
MAGIC_ZERO = bytes(16)
DATA_SIZE = 4096
REPORT_SIZE = 16 + 4 + DATA_SIZE
TEE_INFO_SIZE = {1: 336, 2: 1168}
SIGNED_SIZE = {1: 180, 2: 1024}
SIGNER_SIZE = 2084 + 64 + 32 + 32
MASKED_END = 188
"""V1 masks bytes [0, 188): user_pubkey_digest .. sig_algo."""
POLICY_NODBG = 1 << 0
USAGE_PEK = 0x1002
POLICY_BITS = ("nodbg", "noks", "es", "nosend", "domain", "csv", "csv3", "asid_reuse")
SIMULATED_MARK = b"SIMULATED"


def mask(data: bytes, anonce: int) -> bytes:
    """``data`` XOR the little-endian bytes of ``anonce``, repeating (masking and unmasking are the same)."""
    key = anonce.to_bytes(4, "little")
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


@dataclass(frozen=True)
class TeeInfo:
    """The signed part of a report and its signature, fields as stored (masked in V1). V1 has ``anonce``; V2
    has ``build``, ``rtmr_version``, ``reserved0``, ``rtmrs`` (rtmr0..rtmr4) and ``reserved1``."""

    version: int
    user_pubkey_digest: bytes
    vm_id: bytes
    vm_version: bytes
    report_data: bytes
    mnonce: bytes
    measure: bytes
    policy: int
    sig_usage: int
    sig_algo: int
    signature_r: bytes
    signature_s: bytes
    anonce: int = 0
    build: int = 0
    rtmr_version: int = 0
    reserved0: bytes = b""
    rtmrs: tuple[bytes, ...] = ()
    reserved1: bytes = b""

    def to_bytes(self) -> bytes:
        head = b"".join(
            (self.user_pubkey_digest, self.vm_id, self.vm_version, self.report_data, self.mnonce, self.measure)
        ) + struct.pack("<III", self.policy, self.sig_usage, self.sig_algo)
        if self.version == 1:
            body = head + struct.pack("<I", self.anonce)
        else:
            body = head + struct.pack("<IH", self.build, self.rtmr_version) + self.reserved0
            body += b"".join(self.rtmrs) + self.reserved1
        return body + self.signature_r + self.signature_s

    def signed_bytes(self) -> bytes:
        """The bytes the PEK signs: [0, 180) in V1 (masked, as stored), [0, 1024) in V2."""
        return self.to_bytes()[: SIGNED_SIZE[self.version]]


@dataclass(frozen=True)
class SignerBlock:
    """What follows the tee-info: the PEK certificate, the chip serial number (NUL-padded ASCII), 32 reserved
    bytes and the MAC, as stored. Not covered by the report signature: the PEK is verified by its chain."""

    pek: bytes
    serial: bytes
    reserved: bytes
    mac: bytes

    def to_bytes(self) -> bytes:
        return self.pek + self.serial + self.reserved + self.mac


@dataclass(frozen=True)
class CsvReport:
    """A parsed CSV report wrapper (see the module docstring). Unmasked values are properties."""

    magic: bytes
    flags: int
    tee_info: TeeInfo
    signer: SignerBlock
    padding: bytes

    kind = "csv"

    @property
    def version(self) -> int:
        return self.tee_info.version

    def _clear(self, value: bytes) -> bytes:
        return mask(value, self.tee_info.anonce) if self.version == 1 else value

    def _clear_u32(self, value: int) -> int:
        return value ^ self.tee_info.anonce if self.version == 1 else value

    @property
    def report_data(self) -> bytes:
        """The 64 bytes of user data the guest asked to be attested (unmasked): cchet's binding transcript."""
        return self._clear(self.tee_info.report_data)

    @property
    def user_pubkey_digest(self) -> bytes:
        return self._clear(self.tee_info.user_pubkey_digest)

    @property
    def vm_id(self) -> bytes:
        return self._clear(self.tee_info.vm_id)

    @property
    def vm_version(self) -> bytes:
        return self._clear(self.tee_info.vm_version)

    @property
    def mnonce(self) -> bytes:
        return self._clear(self.tee_info.mnonce)

    @property
    def measurement(self) -> bytes:
        """The launch digest (SM3) of the guest: ``measure``."""
        return self._clear(self.tee_info.measure)

    @property
    def policy(self) -> int:
        """The guest policy (bit 0 NODBG: debugging disallowed when set)."""
        return self._clear_u32(self.tee_info.policy)

    @property
    def sig_usage(self) -> int:
        return self._clear_u32(self.tee_info.sig_usage)

    @property
    def sig_algo(self) -> int:
        return self._clear_u32(self.tee_info.sig_algo)

    @property
    def debug(self) -> bool:
        """Whether the guest may be debugged (policy NODBG clear): its memory is then readable by the host."""
        return not self.policy & POLICY_NODBG

    @property
    def signer_masked(self) -> bool:
        """Whether the signer block is still masked (a V1 block as the firmware returns it, before the guest's
        attester unmasked it): its PEK usage field reads as a PEK only once unmasked."""
        stored = self.signer.pek
        if self.version != 1 or int.from_bytes(stored[8:12], "little") == USAGE_PEK:
            return False
        return int.from_bytes(mask(stored[8:12], self.tee_info.anonce), "little") == USAGE_PEK

    def pek_bytes(self) -> bytes:
        """The PEK certificate of the signer block, in clear."""
        return mask(self.signer.pek, self.tee_info.anonce) if self.signer_masked else self.signer.pek

    @property
    def serial_number(self) -> str:
        """The chip serial number (the key of Hygon's KDS), from the signer block; not signed by anything."""
        raw = mask(self.signer.serial, self.tee_info.anonce) if self.signer_masked else self.signer.serial
        return raw.rstrip(b"\0").decode("ascii", "replace")

    @property
    def simulated(self) -> bool:
        """Whether the report names a SIMULATED chip (its serial or its PEK's ID): a label, not a verification."""
        return SIMULATED_MARK.decode() in self.serial_number or SIMULATED_MARK in self.pek_bytes()[166:420]

    def signed_bytes(self) -> bytes:
        return self.tee_info.signed_bytes()

    def to_bytes(self) -> bytes:
        data = self.tee_info.to_bytes() + self.signer.to_bytes() + self.padding
        return self.magic + struct.pack("<I", self.flags) + data

    def with_tee_info(self, **changes: object) -> CsvReport:
        """A copy with tee-info fields replaced (as stored); for simulation and tests."""
        return replace(self, tee_info=replace(self.tee_info, **changes))  # type: ignore[arg-type]


def _version(magic: bytes, flags: int) -> int:
    if magic == MAGIC_ZERO or (magic == MAGIC_EXT and flags == 0):
        return 1
    if magic == MAGIC_EXT and flags == 1:
        return 2
    if magic == MAGIC_EXT:
        raise EvidenceFormatError(f"flags {flags} with the extended magic (expected 0 or 1)", offset=16, field="flags")
    raise EvidenceFormatError("magic is neither zero nor ATTESTATION_EXT", offset=0, field="magic")


def _tee_info(cur: Cursor, version: int) -> TeeInfo:
    fields: dict[str, object] = {"version": version}
    for name, size in (
        ("user_pubkey_digest", 32),
        ("vm_id", 16),
        ("vm_version", 16),
        ("report_data", 64),
        ("mnonce", 16),
        ("measure", 32),
    ):
        fields[name] = cur.take(size, f"tee_info.{name}")
    for name in ("policy", "sig_usage", "sig_algo"):
        fields[name] = cur.u32(f"tee_info.{name}")
    if version == 1:
        fields["anonce"] = cur.u32("tee_info.anonce")
    else:
        fields["build"] = cur.u32("tee_info.build")
        fields["rtmr_version"] = cur.u16("tee_info.rtmr_version")
        fields["reserved0"] = cur.take(14, "tee_info.reserved0")
        fields["rtmrs"] = tuple(cur.take(32, f"tee_info.rtmr{i}") for i in range(5))
        fields["reserved1"] = cur.take(656, "tee_info.reserved1")
    fields["signature_r"] = cur.take(72, "tee_info.signature.r")
    fields["signature_s"] = cur.take(72, "tee_info.signature.s")
    return TeeInfo(**fields)  # type: ignore[arg-type]


def parse_csv_report(data: bytes) -> CsvReport:
    """Parses the 4116-byte report wrapper; raises :class:`EvidenceFormatError` naming the offset and field."""
    data = bytes(data)
    if len(data) != REPORT_SIZE:
        raise EvidenceFormatError(
            f"a CSV report wrapper is {REPORT_SIZE} bytes (magic, flags, 4096 bytes of report), got {len(data)}",
            offset=0,
            field="report",
        )
    cur = Cursor(data)
    magic = cur.take(16, "magic")
    flags = cur.u32("flags")
    version = _version(magic, flags)
    info = _tee_info(cur, version)
    signer = SignerBlock(
        pek=cur.take(2084, "signer.pek_cert"),
        serial=cur.take(64, "signer.sn"),
        reserved=cur.take(32, "signer.reserved"),
        mac=cur.take(32, "signer.mac"),
    )
    return CsvReport(magic, flags, info, signer, cur.rest())
