"""The TDREPORT_STRUCT an Azure TDX confidential VM's HCL report carries (1024 bytes), per Intel's TDX module ABI.

Layout (little-endian; offsets within the report)::

    0x000  REPORTMACSTRUCT (256): report type (4), reserved (12, zero), CPUSVN (16), TEE_TCB_INFO hash (48),
           TEE_INFO hash (48), REPORTDATA (64), reserved (32, zero), MAC (32)
    0x100  TEE_TCB_INFO (239): valid (8), TEE_TCB_SVN (16), MRSEAM (48), MRSIGNERSEAM (48), attributes (8),
           TEE_TCB_SVN2 (16; zero before TDX 1.5), reserved (95, zero)
    0x1EF  reserved (17, zero)
    0x200  TDINFO (512): attributes (8), XFAM (8), MRTD, MRCONFIGID, MROWNER, MROWNERCONFIG (48 each),
           RTMR0..3 (48 each), SERVTD_HASH (48; zero before TDX 1.5), reserved (64, zero)

The report is MACed with a key only the CPU holds, so nobody else can check it: what a verifier trusts is the
DCAP quote the platform's quoting enclave made for it. Verification compares this copy with that quote, and
checks that its TEE_TCB_INFO and TDINFO hashes are theirs (SHA-384), as the MAC covers them.
"""

from __future__ import annotations

from dataclasses import dataclass

from cchet.attest.formats.cursor import Cursor, require_zero

__all__ = ["TDREPORT_SIZE", "TdReport", "parse_td_report"]

TDREPORT_SIZE = 1024


@dataclass(frozen=True)
class TdReport:
    """A parsed TDREPORT_STRUCT (see the module docstring); every field keeps its raw bytes."""

    report_type: bytes
    cpu_svn: bytes
    tee_tcb_info_hash: bytes
    tee_info_hash: bytes
    report_data: bytes
    mac: bytes
    tcb_valid: bytes
    tee_tcb_svn: bytes
    mr_seam: bytes
    mr_signer_seam: bytes
    seam_attributes: bytes
    tee_tcb_svn2: bytes
    td_attributes: bytes
    xfam: bytes
    mr_td: bytes
    mr_config_id: bytes
    mr_owner: bytes
    mr_owner_config: bytes
    rtmrs: tuple[bytes, bytes, bytes, bytes]
    servtd_hash: bytes

    def tee_tcb_info(self) -> bytes:
        """The 239 bytes of TEE_TCB_INFO (``tee_tcb_info_hash`` is their SHA-384)."""
        return b"".join(
            (
                self.tcb_valid,
                self.tee_tcb_svn,
                self.mr_seam,
                self.mr_signer_seam,
                self.seam_attributes,
                self.tee_tcb_svn2,
                bytes(95),
            )
        )

    def td_info(self) -> bytes:
        """The 512 bytes of TDINFO (``tee_info_hash`` is their SHA-384)."""
        return b"".join(
            (
                self.td_attributes,
                self.xfam,
                self.mr_td,
                self.mr_config_id,
                self.mr_owner,
                self.mr_owner_config,
                *self.rtmrs,
                self.servtd_hash,
                bytes(64),
            )
        )

    def to_bytes(self) -> bytes:
        mac_struct = b"".join(
            (
                self.report_type,
                bytes(12),
                self.cpu_svn,
                self.tee_tcb_info_hash,
                self.tee_info_hash,
                self.report_data,
                bytes(32),
                self.mac,
            )
        )
        return mac_struct + self.tee_tcb_info() + bytes(17) + self.td_info()


def _zero(cur: Cursor, n: int, field: str) -> None:
    at = cur.offset
    require_zero(cur.take(n, field), offset=at, field=field)


def parse_td_report(cur: Cursor, field: str = "td_report") -> TdReport:
    """Reads 1024 bytes of TDREPORT_STRUCT from ``cur``; raises :class:`~cchet.errors.EvidenceFormatError`
    naming the offset and field when it is short or a reserved range is not zero."""
    f: dict[str, bytes] = {}

    def take(name: str, n: int) -> None:
        f[name] = cur.take(n, f"{field}.{name}")

    take("report_type", 4)
    _zero(cur, 12, f"{field}.reserved1")
    for name, n in (("cpu_svn", 16), ("tee_tcb_info_hash", 48), ("tee_info_hash", 48), ("report_data", 64)):
        take(name, n)
    _zero(cur, 32, f"{field}.reserved2")
    take("mac", 32)
    for name, n in (
        ("tcb_valid", 8),
        ("tee_tcb_svn", 16),
        ("mr_seam", 48),
        ("mr_signer_seam", 48),
        ("seam_attributes", 8),
        ("tee_tcb_svn2", 16),
    ):
        take(name, n)
    _zero(cur, 95 + 17, f"{field}.reserved3")
    for name, n in (
        ("td_attributes", 8),
        ("xfam", 8),
        ("mr_td", 48),
        ("mr_config_id", 48),
        ("mr_owner", 48),
        ("mr_owner_config", 48),
    ):
        take(name, n)
    rtmrs = tuple(cur.take(48, f"{field}.rtmr{i}") for i in range(4))
    take("servtd_hash", 48)
    _zero(cur, 64, f"{field}.reserved4")
    return TdReport(**f, rtmrs=rtmrs)  # type: ignore[arg-type]
