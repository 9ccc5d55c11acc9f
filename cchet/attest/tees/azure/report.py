"""Azure vTPM evidence as one object: the HCL report, the vTPM's quote over the PCRs, the PCR values, and the
hardware report's own credential (SEV-SNP: the VCEK; TDX: the DCAP quote Azure's IMDS made for the TDREPORT).

Binary form (cchet's container; little-endian, every part length-prefixed, nothing after the last)::

    0   4  magic "AZVT"
    4   2  u16 container version (1)
    6   2  u16 reserved (0)
    8      u32 length + the HCL report (NV index 0x01400001, at most 16 KiB)
           u32 length + the quote's TPMS_ATTEST (the signed message)
           u32 length + the quote's signature (1..512 bytes)
           u32 length + the PCR values: SHA-256, 32 bytes each, in the quote's selection order (at most 24)
           u32 length + SNP: the VCEK (DER, at most 8 KiB, may be empty: collateral then provides it);
                        TDX: the TD quote (DCAP v4/v5, at most 32 KiB)

:func:`parse_azure_report` also reads trustee's evidence JSON (versions 0 and 1, SNP and TDX:
:mod:`cchet.attest.tees.azure.trustee`); :meth:`AzureVtpmReport.to_bytes` always writes the binary form, whose
round trip is exact. Parsing checks sizes, constants and reserved bytes and that the parts agree on the kind
(a TD quote only with a TDX HCL report, and a TDX quote at that); it verifies nothing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cchet.attest.formats.certchain import MAX_CERTIFICATE_BYTES
from cchet.attest.formats.cursor import Cursor, require_zero
from cchet.attest.formats.dcap import Quote, parse_quote
from cchet.attest.formats.snp import SnpReport
from cchet.attest.tees.azure.hcl import MAX_HCL_SIZE, REPORT_TYPE_SNP, HclReport, parse_hcl_report
from cchet.attest.tees.azure.runtime_data import names_simulated
from cchet.attest.tees.azure.tdreport import TdReport
from cchet.attest.tees.azure.tpm import MAX_ATTEST, MAX_SIGNATURE, TpmQuote, parse_tpms_attest
from cchet.errors import EvidenceFormatError

__all__ = [
    "KIND_OF_REPORT_TYPE",
    "MAGIC",
    "MAX_PCRS",
    "MAX_TD_QUOTE",
    "AzureVtpmReport",
    "parse_azure_report",
]

MAGIC = b"AZVT"
CONTAINER_VERSION = 1
PCR_SIZE = 32
MAX_PCRS = 24
MAX_TD_QUOTE = 32 * 1024
KIND_OF_REPORT_TYPE = {2: "az-snp", 4: "az-tdx"}


@dataclass(frozen=True)
class AzureVtpmReport:
    """One Azure confidential VM's evidence (see the module docstring).

    ``report_data`` is the TPM quote's qualifying data (extraData): the 64 bytes of cchet's transcript
    (DESIGN.md section 4) for evidence cchet collected, or whatever the requester asked for (trustee's tests:
    the 9 bytes ``challenge``). ``simulated`` says whether it names a SIMULATED authority (a label, not a
    verification)."""

    hcl: HclReport
    quote: TpmQuote
    pcrs: tuple[bytes, ...]
    vcek: bytes = b""
    td_quote: Quote | None = None

    @property
    def kind(self) -> str:
        return KIND_OF_REPORT_TYPE[self.hcl.report_type]

    @property
    def report_data(self) -> bytes:
        return self.quote.attest.extra_data

    @property
    def hardware(self) -> SnpReport | TdReport:
        return self.hcl.hardware

    @property
    def vendor_report(self) -> SnpReport | Quote:
        """The report the CPU vendor's key signed -- the SNP report, or the TD quote -- and whose collateral
        (AMD KDS chain and VCEK, Intel PCS TCB info and QE identity) verification needs."""
        if self.td_quote is not None:
            return self.td_quote
        hardware = self.hcl.hardware
        assert isinstance(hardware, SnpReport)  # the parser pairs every TDX HCL report with its TD quote
        return hardware

    @property
    def bound_report_data(self) -> bytes:
        """The hardware-signed report data that must start with SHA-256 of the runtime data: the SNP
        report's, or the TD quote's."""
        if self.td_quote is not None:
            return self.td_quote.report_data
        return self.hcl.hardware.report_data

    @property
    def simulated(self) -> bool:
        if names_simulated(self.hcl.runtime_data):
            return True
        if self.td_quote is not None:
            return b"SIMULATED" in self.td_quote.signature.qe.certification.data
        return False

    @property
    def debug(self) -> bool:
        """SNP guest policy DEBUG, or TD attributes DEBUG (from the TD quote)."""
        if self.td_quote is not None:
            return bool(self.td_quote.body.debug)
        hw = self.hcl.hardware
        return isinstance(hw, SnpReport) and hw.debug

    def pcr_values(self) -> dict[int, bytes]:
        """PCR number -> value, when the quote selects one SHA-256 bank and the evidence gives one value per
        selected PCR (what verification requires); otherwise empty."""
        banks = self.quote.attest.pcr_select
        if len(banks) != 1 or banks[0].hash_alg != 0x000B or len(banks[0].indices) != len(self.pcrs):
            return {}
        return dict(zip(banks[0].indices, self.pcrs, strict=True))

    def to_bytes(self) -> bytes:
        hw = self.td_quote.to_bytes() if self.td_quote is not None else self.vcek
        parts = (self.hcl.to_bytes(), self.quote.message, self.quote.signature, b"".join(self.pcrs), hw)
        return MAGIC + struct.pack("<HH", CONTAINER_VERSION, 0) + b"".join(struct.pack("<I", len(p)) + p for p in parts)


def _part(cur: Cursor, field: str, limit: int) -> tuple[int, bytes]:
    at = cur.offset
    size = cur.u32(f"{field}.size")
    if size > limit:
        raise EvidenceFormatError(f"{size} bytes, at most {limit}", offset=at, field=f"{field}.size")
    return cur.offset, cur.take(size, field)


def assemble(
    hcl: HclReport, message: bytes, signature: bytes, pcrs: bytes, hardware: bytes, *, offsets: tuple[int, ...]
) -> AzureVtpmReport:
    """Checks and joins parsed parts (``offsets``: where the TPMS_ATTEST, the signature, the PCRs and the hardware
    part begin, for errors). Raises :class:`EvidenceFormatError`."""
    attest = parse_tpms_attest(message, base=offsets[0], field="tpm_quote.message")
    if not 0 < len(signature) <= MAX_SIGNATURE:
        raise EvidenceFormatError(
            f"{len(signature)} bytes, expected 1..{MAX_SIGNATURE}", offset=offsets[1], field="tpm_quote.signature"
        )
    if len(pcrs) % PCR_SIZE or len(pcrs) > MAX_PCRS * PCR_SIZE:
        raise EvidenceFormatError(
            f"{len(pcrs)} bytes is not up to {MAX_PCRS} SHA-256 values", offset=offsets[2], field="pcrs"
        )
    values = tuple(pcrs[i : i + PCR_SIZE] for i in range(0, len(pcrs), PCR_SIZE))
    quote = TpmQuote(attest, signature)
    if hcl.report_type == REPORT_TYPE_SNP:
        if len(hardware) > MAX_CERTIFICATE_BYTES:
            raise EvidenceFormatError(
                f"{len(hardware)} bytes, at most {MAX_CERTIFICATE_BYTES}", offset=offsets[3], field="vcek"
            )
        return AzureVtpmReport(hcl, quote, values, vcek=hardware)
    if not hardware:
        raise EvidenceFormatError("a TDX HCL report needs its TD quote", offset=offsets[3], field="td_quote")
    if len(hardware) > MAX_TD_QUOTE:
        raise EvidenceFormatError(f"{len(hardware)} bytes, at most {MAX_TD_QUOTE}", offset=offsets[3], field="td_quote")
    try:
        td_quote = parse_quote(hardware)
    except EvidenceFormatError as e:
        raise EvidenceFormatError(
            str(e).split(": ", 1)[-1], offset=offsets[3] + (e.offset or 0), field=f"td_quote.{e.field}"
        ) from None
    if td_quote.kind != "tdx":
        raise EvidenceFormatError("the TD quote is an SGX quote", offset=offsets[3] + 4, field="td_quote.tee_type")
    return AzureVtpmReport(hcl, quote, values, td_quote=td_quote)


def _parse_binary(data: bytes) -> AzureVtpmReport:
    cur = Cursor(data)
    if cur.take(4, "magic") != MAGIC:
        raise EvidenceFormatError("not Azure vTPM evidence (magic is not AZVT)", offset=0, field="magic")
    at = cur.offset
    version = cur.u16("version")
    if version != CONTAINER_VERSION:
        raise EvidenceFormatError(f"container version {version}, expected 1", offset=at, field="version")
    at = cur.offset
    require_zero(cur.take(2, "reserved"), offset=at, field="reserved")
    hcl_at, hcl_raw = _part(cur, "hcl_report", MAX_HCL_SIZE)
    hcl = parse_hcl_report(hcl_raw, base=hcl_at)
    parts = [_part(cur, "tpm_quote.message", MAX_ATTEST)]
    parts.append(_part(cur, "tpm_quote.signature", MAX_SIGNATURE))
    parts.append(_part(cur, "pcrs", MAX_PCRS * PCR_SIZE))
    parts.append(_part(cur, "hardware", MAX_TD_QUOTE))
    if cur.remaining:
        raise EvidenceFormatError(f"{cur.remaining} bytes after the last part", offset=cur.offset, field="trailing")
    (m_at, message), (s_at, signature), (p_at, pcrs), (h_at, hardware) = parts
    return assemble(hcl, message, signature, pcrs, hardware, offsets=(m_at, s_at, p_at, h_at))


def parse_azure_report(data: bytes, kind: str | None = None) -> AzureVtpmReport:
    """Parses Azure vTPM evidence: cchet's binary form, or trustee's evidence JSON (versions 0 and 1). With
    ``kind`` (``az-snp``, ``az-tdx``) the evidence must be of that kind. Raises :class:`EvidenceFormatError`
    naming the offset and field."""
    data = bytes(data)
    if data.lstrip()[:1] == b"{":
        from cchet.attest.tees.azure.trustee import parse_trustee_evidence

        report = parse_trustee_evidence(data)
    else:
        report = _parse_binary(data)
    if kind is not None and report.kind != kind:
        raise EvidenceFormatError(
            f"{report.kind} evidence, expected {kind}", field="hcl_report.igvm.report_type", offset=None
        )
    return report
