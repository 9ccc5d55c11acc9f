"""TDX and SEV-SNP evidence through the kernel's configfs-tsm interface (``/sys/kernel/config/tsm/report``).

Protocol (Documentation/ABI/testing/configfs-tsm): make a report directory, write the 64 bytes of report
data to ``inblob`` (and optionally ``privlevel``), read ``outblob`` (a TDX quote or an SNP report),
``auxblob`` (SNP: the certificate table holding VCEK/VLEK, ASK and ARK) and ``provider``, check that
``generation`` moved by exactly one write (otherwise another writer raced us), and remove the directory.
The TDX event log is read from the ACPI CCEL table data when present.

Paths are injected; tests point them at a fake that serves real fixture bytes.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from cchet.attest.evidence import CpuEvidence
from cchet.attest.formats.ccel import parse_ccel
from cchet.attest.formats.certchain import der_to_pem
from cchet.attest.formats.cursor import Cursor
from cchet.attest.formats.dcap import parse_quote
from cchet.attest.formats.snp import parse_snp_report
from cchet.errors import AttestationError, DeviceUnavailable, EvidenceFormatError

__all__ = [
    "DEFAULT_CCEL",
    "DEFAULT_TSM_ROOT",
    "SNP_CERT_GUIDS",
    "TsmAttester",
    "snp_cert_table_to_pem",
]

DEFAULT_TSM_ROOT = Path("/sys/kernel/config/tsm/report")
DEFAULT_CCEL = Path("/sys/firmware/acpi/tables/data/CCEL")
SNP_CERT_GUIDS = {
    "63da758d-e664-4564-adc5-f4b93be8accd": "vcek",
    "a8074bc2-a25a-483e-aae6-39c045a0b8a1": "vlek",
    "4ab7b379-bbac-4fe4-a02f-05aef327c782": "ask",
    "c0b406a4-a803-4952-9743-3fb6014cd0ae": "ark",
}
_PROVIDERS = {"tdx_guest": "tdx", "sev_guest": "snp"}
_ORDER = ("vcek", "vlek", "ask", "ark")


def snp_cert_table_to_pem(table: bytes) -> bytes:
    """The certificates of an SNP extended-report certificate table (GUID, offset, length entries ending in
    a zero entry) as PEM, leaf (VCEK or VLEK) first, then ASK, then ARK. Raises
    :class:`EvidenceFormatError` when an entry points outside the table."""
    cur = Cursor(table)
    found: dict[str, bytes] = {}
    while cur.remaining >= 24:
        guid = cur.take(16, "cert_table.guid")
        offset = cur.u32("cert_table.offset")
        length = cur.u32("cert_table.length")
        if not any(guid) and offset == 0 and length == 0:
            break
        if offset + length > len(table):
            raise EvidenceFormatError(
                "certificate entry overruns the table", offset=cur.offset - 8, field="cert_table.offset"
            )
        name = SNP_CERT_GUIDS.get(str(uuid.UUID(bytes_le=guid)))
        if name is not None:
            found[name] = table[offset : offset + length]
    return b"".join(der_to_pem(found[n]) for n in _ORDER if n in found)


class TsmAttester:
    """Collects a TDX quote or SNP report through configfs-tsm under ``root``; ``ccel`` is the TDX event log
    path (skipped when absent). ``privlevel`` is written for SNP when given."""

    def __init__(
        self, root: Path = DEFAULT_TSM_ROOT, *, ccel: Path | None = DEFAULT_CCEL, privlevel: int | None = None
    ) -> None:
        self.root = Path(root)
        self.ccel = ccel
        self.privlevel = privlevel
        self.kind = "unknown"

    def probe(self) -> str:
        """Which TEE this guest is (``"tdx"`` or ``"snp"``), from a fresh report entry's ``provider``; sets
        :attr:`kind`. Raises :class:`DeviceUnavailable` without configfs-tsm or for another provider."""
        if not self.root.is_dir():
            raise DeviceUnavailable(f"no configfs-tsm at {self.root}: this is not a TDX or SEV-SNP guest")
        entry = self.make_entry()
        try:
            provider = self.read(entry, "provider").decode().strip()
        finally:
            self.remove_entry(entry)
        kind = _PROVIDERS.get(provider)
        if kind is None:
            raise DeviceUnavailable(f"configfs-tsm provider {provider!r} is not TDX or SEV-SNP")
        self.kind = kind
        return kind

    def make_entry(self) -> Path:
        """Creates a fresh report directory (the kernel fills in its attributes)."""
        entry = self.root / f"cchet-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        entry.mkdir()
        return entry

    def remove_entry(self, entry: Path) -> None:
        """Removes the report directory (configfs removes its attributes with it)."""
        entry.rmdir()

    def read(self, entry: Path, name: str) -> bytes:
        """Reads one attribute of a report directory."""
        return (entry / name).read_bytes()

    def write(self, entry: Path, name: str, data: bytes) -> None:
        """Writes one attribute of a report directory (the kernel acts on the write)."""
        (entry / name).write_bytes(data)

    def collect(self, report_data: bytes) -> CpuEvidence:
        """Raises ``ValueError`` unless ``report_data`` is 64 bytes, :class:`DeviceUnavailable` when there is
        no configfs-tsm, :class:`AttestationError` when another writer raced us or the report answers other
        report data, :class:`EvidenceFormatError` when the kernel's bytes do not parse."""
        if len(report_data) != 64:
            raise ValueError("report_data must be exactly 64 bytes")
        if not self.root.is_dir():
            raise DeviceUnavailable(
                f"no configfs-tsm at {self.root}: this is not a TDX or SEV-SNP guest with Linux >= 6.7 "
                "(mount configfs, or use cchet.attest.simulate for a simulated TEE)"
            )
        entry = self.make_entry()
        try:
            provider = self.read(entry, "provider").decode().strip()
            kind = _PROVIDERS.get(provider)
            if kind is None:
                raise DeviceUnavailable(f"configfs-tsm provider {provider!r} is not TDX or SEV-SNP")
            self.kind = kind
            before = int(self.read(entry, "generation"))
            if self.privlevel is not None and kind == "snp":
                self.write(entry, "privlevel", str(self.privlevel).encode())
                before += 1
            self.write(entry, "inblob", report_data)
            outblob = self.read(entry, "outblob")
            has_aux = kind == "snp" and (entry / "auxblob").exists()
            auxblob = self.read(entry, "auxblob") if has_aux else b""
            after = int(self.read(entry, "generation"))
            if after != before + 1:
                raise AttestationError(
                    f"configfs-tsm generation moved from {before} to {after}: a concurrent "
                    "writer changed the request; retry"
                )
        finally:
            self.remove_entry(entry)
        if kind == "tdx":
            quote = parse_quote(outblob)
            if quote.report_data != report_data:
                raise AttestationError("the TDX quote carries other report data than requested")
            log = None
            if self.ccel is not None and Path(self.ccel).exists():
                log = parse_ccel(Path(self.ccel).read_bytes())
            return CpuEvidence(quote, b"", log)
        report = parse_snp_report(outblob)
        if report.report_data != report_data:
            raise AttestationError("the SNP report carries other report data than requested")
        return CpuEvidence(report, snp_cert_table_to_pem(auxblob) if auxblob else b"")
