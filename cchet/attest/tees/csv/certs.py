"""Hygon's certificate formats (not X.509): the CA format of the root and signing keys, the CSV format of the chip
and platform keys, and bundles of them.

The chain is HRK -> HSK -> CEK -> PEK -> report: the Hygon Root Key (self-signed) signs the Hygon Signing Key,
which signs the chip's Chip Endorsement Key, which signs the Platform Endorsement Key that signs attestation
reports. All keys are SM2 (curve id 3) with coordinates stored little-endian in 72-byte fields.

- CA format (HRK, HSK), 832 bytes: a 576-byte signed body (version, key id, certifying id, key usage, 24
  reserved bytes, curve, x, y, ID length, 254-byte ID field, 108 reserved bytes), the signature r and s (72
  bytes each, little-endian) and 112 reserved bytes.
- CSV format (CEK, PEK, and the owner's OCA and the PDH), 2084 bytes: a 1044-byte signed body (version, firmware
  API major and minor, 2 reserved bytes, key usage, algorithm, curve, x, y, ID length, 254-byte ID field, 16-byte
  signer id, 608 reserved bytes) and two signature slots (usage, algorithm, r, s, 368 reserved bytes).

Parsing checks sizes and that the ID length fits its field, nothing else: Hygon publishes no specification that
says which reserved bytes are zero, so they are kept byte for byte (the signatures cover the bodies). A bundle
(what ``--certs`` reads and Hygon's KDS serves: HSK then CEK) is raw certificates back to back, or PEM-style
``HYGON CERTIFICATE`` blocks holding them (what cchet's composite evidence carries); each certificate's format is
recognised from its usage and curve fields.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass

from cchet.attest.formats.cursor import Cursor
from cchet.errors import EvidenceFormatError

__all__ = [
    "ALGO_SM2_SIGN",
    "CA_CERT_SIZE",
    "CSV_CERT_SIZE",
    "CURVE_SM2",
    "MAX_CERTIFICATES",
    "USAGE_CEK",
    "USAGE_HRK",
    "USAGE_HSK",
    "USAGE_INVALID",
    "USAGE_OCA",
    "USAGE_PDH",
    "USAGE_PEK",
    "CaCertificate",
    "CsvCertificate",
    "CsvSignatureSlot",
    "HygonCertificate",
    "armor",
    "parse_ca_certificate",
    "parse_certificates",
    "parse_csv_certificate",
]

CA_CERT_SIZE = 832
CA_BODY_SIZE = 576
CSV_CERT_SIZE = 2084
CSV_BODY_SIZE = 1044
SLOT_SIZE = 520
COORD_SIZE = 72
ID_FIELD_SIZE = 254
MAX_CERTIFICATES = 8
"""The most Hygon certificates one bundle may hold (a full chain is 4: HRK, HSK, CEK, PEK)."""

CURVE_SM2 = 3
ALGO_SM2_SIGN = 4
USAGE_HRK = 0x0000
USAGE_HSK = 0x0013
USAGE_OCA = 0x1001
USAGE_PEK = 0x1002
USAGE_PDH = 0x1003
USAGE_CEK = 0x1004
USAGE_INVALID = 0x1000
ROLES = {USAGE_HRK: "HRK", USAGE_HSK: "HSK", USAGE_OCA: "OCA", USAGE_PEK: "PEK", USAGE_PDH: "PDH", USAGE_CEK: "CEK"}
_LABEL = "HYGON CERTIFICATE"
_PEM = re.compile(rb"-----BEGIN HYGON CERTIFICATE-----\s*([A-Za-z0-9+/=\s]*?)-----END HYGON CERTIFICATE-----")


def _le(value: bytes) -> int:
    return int.from_bytes(value, "little")


class _HygonKey:
    """What both of Hygon's certificate formats say about their key: the fields their dataclasses declare."""

    usage: int
    x: bytes
    y: bytes
    uid_size: int
    user_id: bytes

    @property
    def role(self) -> str:
        """``HRK``, ``HSK``, ``CEK``, ``PEK``... (what the usage says), or ``usage 0x...``."""
        return ROLES.get(self.usage, f"usage {self.usage:#x}")

    @property
    def distinguishing_id(self) -> bytes:
        """The ID its signatures use (``HYGON-SSD-HRK``): the first ``uid_size`` bytes of the ID field."""
        return self.user_id[: self.uid_size]

    @property
    def point(self) -> tuple[int, int]:
        return _le(self.x), _le(self.y)


@dataclass(frozen=True)
class CaCertificate(_HygonKey):
    """A certificate in Hygon's CA format (the HRK or an HSK); byte fields as stored."""

    version: int
    key_id: bytes
    certifying_id: bytes
    usage: int
    reserved0: bytes
    curve: int
    x: bytes
    y: bytes
    uid_size: int
    user_id: bytes
    reserved1: bytes
    signature_r: bytes
    signature_s: bytes
    reserved2: bytes

    @property
    def signature(self) -> tuple[int, int]:
        return _le(self.signature_r), _le(self.signature_s)

    def body(self) -> bytes:
        """The 576 signed bytes."""
        return self.to_bytes()[:CA_BODY_SIZE]

    def to_bytes(self) -> bytes:
        return b"".join(
            (
                struct.pack("<I", self.version),
                self.key_id,
                self.certifying_id,
                struct.pack("<I", self.usage),
                self.reserved0,
                struct.pack("<I", self.curve),
                self.x,
                self.y,
                struct.pack("<H", self.uid_size),
                self.user_id,
                self.reserved1,
                self.signature_r,
                self.signature_s,
                self.reserved2,
            )
        )


@dataclass(frozen=True)
class CsvSignatureSlot:
    """One of a CSV-format certificate's two signatures: by the key whose usage is ``usage``."""

    usage: int
    algo: int
    r: bytes
    s: bytes
    reserved: bytes

    @property
    def signature(self) -> tuple[int, int]:
        return _le(self.r), _le(self.s)

    def to_bytes(self) -> bytes:
        return struct.pack("<II", self.usage, self.algo) + self.r + self.s + self.reserved


@dataclass(frozen=True)
class CsvCertificate(_HygonKey):
    """A certificate in Hygon's CSV format (a CEK, PEK, OCA or PDH); byte fields as stored."""

    version: int
    firmware_major: int
    firmware_minor: int
    reserved0: int
    usage: int
    algo: int
    curve: int
    x: bytes
    y: bytes
    uid_size: int
    user_id: bytes
    sid: bytes
    reserved1: bytes
    slots: tuple[CsvSignatureSlot, CsvSignatureSlot]

    @property
    def firmware(self) -> tuple[int, int]:
        """The firmware API version (major, minor) of the platform that made the key."""
        return self.firmware_major, self.firmware_minor

    def body(self) -> bytes:
        """The 1044 signed bytes."""
        return self.to_bytes()[:CSV_BODY_SIZE]

    def to_bytes(self) -> bytes:
        return b"".join(
            (
                struct.pack(
                    "<IBBHIII",
                    self.version,
                    self.firmware_major,
                    self.firmware_minor,
                    self.reserved0,
                    self.usage,
                    self.algo,
                    self.curve,
                ),
                self.x,
                self.y,
                struct.pack("<H", self.uid_size),
                self.user_id,
                self.sid,
                self.reserved1,
                *(slot.to_bytes() for slot in self.slots),
            )
        )


HygonCertificate = CaCertificate | CsvCertificate


def _uid_size(cur: Cursor) -> int:
    at = cur.offset
    size = cur.u16("uid_size")
    if size > ID_FIELD_SIZE:
        raise EvidenceFormatError(
            f"ID length {size} exceeds its {ID_FIELD_SIZE}-byte field", offset=at, field="uid_size"
        )
    return size


def parse_ca_certificate(data: bytes, *, base: int = 0) -> CaCertificate:
    """Parses an 832-byte CA-format certificate; :class:`EvidenceFormatError` names the offset and field."""
    if len(data) != CA_CERT_SIZE:
        raise EvidenceFormatError(
            f"a CA-format certificate is {CA_CERT_SIZE} bytes, got {len(data)}", offset=base, field="hygon_ca_cert"
        )
    cur = Cursor(data, base=base)
    return CaCertificate(
        version=cur.u32("version"),
        key_id=cur.take(16, "key_id"),
        certifying_id=cur.take(16, "certifying_id"),
        usage=cur.u32("usage"),
        reserved0=cur.take(24, "reserved0"),
        curve=cur.u32("curve"),
        x=cur.take(COORD_SIZE, "x"),
        y=cur.take(COORD_SIZE, "y"),
        uid_size=_uid_size(cur),
        user_id=cur.take(ID_FIELD_SIZE, "user_id"),
        reserved1=cur.take(108, "reserved1"),
        signature_r=cur.take(COORD_SIZE, "signature.r"),
        signature_s=cur.take(COORD_SIZE, "signature.s"),
        reserved2=cur.take(112, "reserved2"),
    )


def _slot(cur: Cursor, i: int) -> CsvSignatureSlot:
    return CsvSignatureSlot(
        usage=cur.u32(f"sigs[{i}].usage"),
        algo=cur.u32(f"sigs[{i}].algo"),
        r=cur.take(COORD_SIZE, f"sigs[{i}].r"),
        s=cur.take(COORD_SIZE, f"sigs[{i}].s"),
        reserved=cur.take(368, f"sigs[{i}].reserved"),
    )


def parse_csv_certificate(data: bytes, *, base: int = 0) -> CsvCertificate:
    """Parses a 2084-byte CSV-format certificate; :class:`EvidenceFormatError` names the offset and field."""
    if len(data) != CSV_CERT_SIZE:
        raise EvidenceFormatError(
            f"a CSV-format certificate is {CSV_CERT_SIZE} bytes, got {len(data)}", offset=base, field="hygon_csv_cert"
        )
    cur = Cursor(data, base=base)
    version = cur.u32("version")
    major, minor = cur.u8("firmware.major"), cur.u8("firmware.minor")
    reserved0 = cur.u16("reserved0")
    usage, algo, curve = cur.u32("pubkey.usage"), cur.u32("pubkey.algo"), cur.u32("pubkey.curve")
    x, y = cur.take(COORD_SIZE, "pubkey.x"), cur.take(COORD_SIZE, "pubkey.y")
    uid_size = _uid_size(cur)
    return CsvCertificate(
        version=version,
        firmware_major=major,
        firmware_minor=minor,
        reserved0=reserved0,
        usage=usage,
        algo=algo,
        curve=curve,
        x=x,
        y=y,
        uid_size=uid_size,
        user_id=cur.take(ID_FIELD_SIZE, "user_id"),
        sid=cur.take(16, "sid"),
        reserved1=cur.take(608, "reserved1"),
        slots=(_slot(cur, 0), _slot(cur, 1)),
    )


def _looks_csv(data: bytes) -> bool:
    return (
        len(data) >= 20 and _le(data[8:12]) in ROLES and _le(data[8:12]) >= USAGE_OCA and _le(data[16:20]) == CURVE_SM2
    )


def _looks_ca(data: bytes) -> bool:
    return len(data) >= 68 and _le(data[36:40]) in (USAGE_HRK, USAGE_HSK) and _le(data[64:68]) == CURVE_SM2


def _split_raw(data: bytes, base: int) -> list[HygonCertificate]:
    out: list[HygonCertificate] = []
    at = 0
    while at < len(data):
        rest = data[at:]
        if _looks_csv(rest):
            out.append(parse_csv_certificate(rest[:CSV_CERT_SIZE], base=base + at))
            at += CSV_CERT_SIZE
        elif _looks_ca(rest):
            out.append(parse_ca_certificate(rest[:CA_CERT_SIZE], base=base + at))
            at += CA_CERT_SIZE
        else:
            raise EvidenceFormatError(
                "not a Hygon CA-format (HRK/HSK) or CSV-format (CEK/PEK) certificate",
                offset=base + at,
                field="certificates",
            )
        if len(out) > MAX_CERTIFICATES:
            raise EvidenceFormatError(
                f"more than {MAX_CERTIFICATES} certificates", offset=base + at, field="certificates"
            )
    return out


def parse_certificates(data: bytes) -> tuple[HygonCertificate, ...]:
    """Every certificate of a bundle: raw certificates back to back (Hygon KDS's ``hsk_cek``: HSK then CEK; a
    lone ``hrk.cert``), or ``HYGON CERTIFICATE`` PEM blocks (:func:`armor`). Raises :class:`EvidenceFormatError`
    naming the offset for anything else, or more than :data:`MAX_CERTIFICATES` certificates."""
    data = bytes(data)
    if b"-----BEGIN" not in data:
        return tuple(_split_raw(data, 0))
    out: list[HygonCertificate] = []
    blocks = list(_PEM.finditer(data))
    if not blocks:
        raise EvidenceFormatError(f"no {_LABEL} block", offset=0, field="certificates")
    if len(blocks) > MAX_CERTIFICATES:
        raise EvidenceFormatError(f"more than {MAX_CERTIFICATES} certificates", offset=0, field="certificates")
    for m in blocks:
        try:
            raw = base64.b64decode(b"".join(m.group(1).split()), validate=True)
        except (binascii.Error, ValueError):
            raise EvidenceFormatError("bad base64", offset=m.start(), field="certificates") from None
        if len(raw) not in (CA_CERT_SIZE, CSV_CERT_SIZE):
            raise EvidenceFormatError(
                f"a {_LABEL} block holds {len(raw)} bytes, not {CA_CERT_SIZE} or {CSV_CERT_SIZE}",
                offset=m.start(),
                field="certificates",
            )
        parse = parse_ca_certificate if len(raw) == CA_CERT_SIZE else parse_csv_certificate
        out.append(parse(raw, base=m.start()))
    return tuple(out)


def armor(certificates: tuple[HygonCertificate, ...] | list[HygonCertificate]) -> bytes:
    """``HYGON CERTIFICATE`` PEM blocks of ``certificates``, in order (what :func:`parse_certificates` reads)."""
    out = []
    for cert in certificates:
        text = base64.encodebytes(cert.to_bytes()).replace(b"\n", b"")
        lines = b"\n".join(text[i : i + 64] for i in range(0, len(text), 64))
        out.append(b"-----BEGIN %s-----\n%s\n-----END %s-----\n" % (_LABEL.encode(), lines, _LABEL.encode()))
    return b"".join(out)
