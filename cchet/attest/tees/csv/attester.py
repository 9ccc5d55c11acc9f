"""The Hygon CSV guest attester: a report from the Hygon Secure Processor through ``/dev/csv-guest``.

Protocol (Hygon's CSV guest driver, as csv-rs and Hygon's attestation tools use it): the guest writes a request
``data[64] || mnonce[16] || SM3(data || mnonce)[32]`` at the start of a 4096-byte page and issues the ioctl
``GET_ATTESTATION_REPORT = _IOWR('D', 1, struct csv_guest_mem { unsigned long va; int size; })`` with the page's
address and size; the firmware writes the V1 report into the same page: tee-info (336 bytes), then the signer
block (PEK certificate, chip serial number, reserved, MAC), the tee-info fields and the signer block masked with
the report's ``anonce``. The attester then checks what only it can check -- that the unmasked mnonce is the one
it sent and that the MAC (HMAC-SM3 keyed by the mnonce over the masked PEK, serial number and reserved bytes)
holds -- unmasks the signer block (reserved bytes zeroed, as csv-rs does) and wraps the page as a V1 report
(``magic`` zero, ``flags`` 0). It refuses a report whose report data is not the one asked for.

The HSK and CEK are not in the report: when the host provisioned them (trustee's layout,
``/opt/hygon/csv/hsk_cek/<serial>/hsk_cek.cert``) they travel with the evidence; otherwise the verifier takes
them from its collateral (Hygon's KDS). The extended (V2) request is not issued here. On a machine without
``/dev/csv-guest`` :meth:`CsvAttester.collect` raises :class:`~cchet.errors.DeviceUnavailable`; tests inject
the ioctl (``transport``) and point the paths at files of their own.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cchet.attest.evidence import CpuEvidence
from cchet.errors import AttestationError, DeviceUnavailable, EvidenceFormatError

__all__ = ["DEFAULT_DEVICE", "DEFAULT_HSK_CEK_DIR", "GET_ATTESTATION_REPORT", "CsvAttester", "ioctl_transport"]

DEFAULT_DEVICE = Path("/dev/csv-guest")
DEFAULT_HSK_CEK_DIR = Path("/opt/hygon/csv/hsk_cek")
PAGE = 4096
_MEM_SIZE = 16  # struct csv_guest_mem on 64-bit Linux: u64 va, int size, padding
GET_ATTESTATION_REPORT = (3 << 30) | (_MEM_SIZE << 16) | (ord("D") << 8) | 1
"""``_IOWR('D', 1, struct csv_guest_mem)``."""

Transport = Callable[[Path, bytes], bytes]
"""``transport(device, request_page) -> response_page``: one GET_ATTESTATION_REPORT round trip (4096 bytes)."""


def ioctl_transport(device: Path, page: bytes) -> bytes:
    """The real round trip: the page in an anonymous mapping (page-aligned), its address and size passed to the
    ioctl on ``device``. Raises ``OSError`` as the driver does."""
    import ctypes
    import fcntl
    import mmap
    import struct

    buf = mmap.mmap(-1, PAGE)
    try:
        buf[:] = page
        view = ctypes.c_char.from_buffer(buf)
        arg = struct.pack("=QiI", ctypes.addressof(view), PAGE, 0)
        fd = os.open(device, os.O_RDWR)
        try:
            fcntl.ioctl(fd, GET_ATTESTATION_REPORT, arg)
        finally:
            os.close(fd)
        del view
        return bytes(buf[:])
    finally:
        buf.close()


@dataclass
class CsvAttester:
    """Collects CSV evidence in a Hygon CSV guest (see the module docstring); implements
    :class:`~cchet.attest.attesters.base.CpuAttester`."""

    device: Path = DEFAULT_DEVICE
    hsk_cek_dir: Path = DEFAULT_HSK_CEK_DIR
    transport: Transport = field(default=ioctl_transport)

    kind = "csv"

    def collect(self, report_data: bytes) -> CpuEvidence:
        """A V1 report whose (unmasked) report data is ``report_data``, with the HSK and CEK when the host
        provisioned them. Raises ``ValueError`` unless ``report_data`` is 64 bytes, :class:`DeviceUnavailable`
        without the CSV guest device, :class:`AttestationError` when the firmware's answer fails the mnonce or
        MAC check or binds other report data, :class:`EvidenceFormatError` when it does not parse."""
        from cchet.attest.collateral.source import valid_hygon_serial
        from cchet.attest.tees.csv.certs import armor, parse_certificates
        from cchet.attest.tees.csv.report import MAGIC_ZERO, TEE_INFO_SIZE, SignerBlock, mask, parse_csv_report
        from cchet.attest.tees.csv.simulate import signer_mac
        from cchet.attest.tees.csv.sm2 import sm3

        if len(report_data) != 64:
            raise ValueError("report_data must be exactly 64 bytes")
        if not self.device.exists():
            raise DeviceUnavailable(
                f"no CSV guest device at {self.device}: this is not a Hygon CSV guest (or its csv-guest driver is "
                "not loaded)"
            )
        mnonce = os.urandom(16)
        request = bytes(report_data) + mnonce + sm3(bytes(report_data) + mnonce)
        page = self.transport(self.device, request.ljust(PAGE, b"\0"))
        if len(page) != PAGE:
            raise EvidenceFormatError(f"the driver returned {len(page)} bytes, not a {PAGE}-byte page", field="report")
        report = parse_csv_report(MAGIC_ZERO + bytes(4) + page)
        if not hmac.compare_digest(report.mnonce, mnonce):
            raise AttestationError("the CSV report carries another mnonce than the one sent: not our report")
        stored = report.signer
        if not hmac.compare_digest(signer_mac(mnonce, stored.pek, stored.serial, stored.reserved), stored.mac):
            raise AttestationError("the CSV report's signer block fails its MAC (HMAC-SM3 keyed by the mnonce)")
        a = report.tee_info.anonce
        clear = SignerBlock(mask(stored.pek, a), mask(stored.serial, a), bytes(32), stored.mac)
        start = 20 + TEE_INFO_SIZE[1]
        raw = report.to_bytes()
        report = parse_csv_report(raw[:start] + clear.to_bytes() + raw[start + len(clear.to_bytes()) :])
        if not hmac.compare_digest(report.report_data, bytes(report_data)):
            raise AttestationError("the CSV report binds other report data than the 64 bytes asked for")
        certificates = b""
        serial = report.serial_number
        provisioned = self.hsk_cek_dir / serial / "hsk_cek.cert"
        if valid_hygon_serial(serial) and provisioned.is_file():
            certificates = armor(parse_certificates(provisioned.read_bytes()))
        return CpuEvidence(report, certificates)
