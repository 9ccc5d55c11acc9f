"""Composite evidence: one CPU TEE report (with what verifies it) and the reports of the GPUs beside it.

This is what a worker sends and what :func:`cchet.attest.appraise` consumes. Its wire form is canonical JSON
(``format: "cchet-evidence/v1"``, sorted keys, binary fields base64): :func:`encode_composite` and
:func:`decode_composite` are exact inverses on that form.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cchet.attest.formats.ccel import CcEventLog, parse_ccel
from cchet.attest.formats.dcap import parse_quote
from cchet.attest.formats.snp import parse_snp_report
from cchet.attest.formats.spdm import SpdmReport, parse_spdm_report
from cchet.attest.tees import BUILTIN, is_extra, tee
from cchet.errors import EvidenceFormatError

__all__ = [
    "FORMAT",
    "CompositeEvidence",
    "CpuEvidence",
    "GpuEvidence",
    "decode_composite",
    "encode_composite",
    "gpu_transcripts",
]

FORMAT = "cchet-evidence/v1"


@dataclass(frozen=True)
class CpuEvidence:
    """A TDX or SGX quote (its PCK chain is inside), an SNP report with its VCEK/VLEK chain in
    ``certificates`` (PEM, leaf first), or a TEE family's report (:mod:`cchet.attest.tees`) with what verifies
    it. ``event_log`` is the TDX CCEL when the attester collected it."""

    report: Any
    certificates: bytes = b""
    event_log: CcEventLog | None = None

    @property
    def kind(self) -> str:
        return str(self.report.kind)


GPU_CC_MODES = ("on", "devtools", "unknown")


@dataclass(frozen=True)
class GpuEvidence:
    """One GPU's SPDM report and device certificate chain (PEM, leaf first). ``index`` is its place in the
    binding transcript and in :func:`cchet.attest.binding.gpu_nonce`. ``cc_mode`` is the confidential-computing
    mode the attester read through NVML inside the attested TEE when it collected the report (``on``,
    ``devtools``, or ``unknown`` when it was not reported): the attested node's statement, carried in the
    evidence document and not signed by the GPU itself (its signed measurements are what NVIDIA's RIMs check)."""

    index: int
    report: SpdmReport
    certificates: bytes
    cc_mode: str = "unknown"

    def __post_init__(self) -> None:
        if self.cc_mode not in GPU_CC_MODES:
            raise ValueError(f"cc_mode must be one of {', '.join(GPU_CC_MODES)}, got {self.cc_mode!r}")


@dataclass(frozen=True)
class CompositeEvidence:
    """CPU evidence plus zero or more GPUs, GPU indices distinct and ascending."""

    cpu: CpuEvidence
    gpus: tuple[GpuEvidence, ...] = ()

    kind = "composite"

    def __post_init__(self) -> None:
        idx = [g.index for g in self.gpus]
        if idx != sorted(set(idx)) or any(not 0 <= i <= 255 for i in idx):
            raise ValueError("GPU indices must be distinct, ascending and in 0..255")

    def to_bytes(self) -> bytes:
        return encode_composite(self)

    def gpu_transcripts(self) -> list[tuple[int, bytes, bytes]]:
        """(index, SPDM request, SPDM response with signature, no padding) per GPU: the binding's input."""
        return gpu_transcripts(self.gpus)


def gpu_transcripts(gpus: Sequence[GpuEvidence]) -> list[tuple[int, bytes, bytes]]:
    """What the section 4 binding hashes per GPU: (index, SPDM request, SPDM response with its signature,
    without NVML padding)."""
    return [(g.index, g.report.request.to_bytes(), g.report.response.to_bytes()) for g in gpus]


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def encode_composite(evidence: CompositeEvidence) -> bytes:
    """Canonical JSON bytes for ``evidence``."""
    cpu: dict[str, Any] = {
        "kind": evidence.cpu.kind,
        "report": _b64(evidence.cpu.report.to_bytes()),
        "certificates": evidence.cpu.certificates.decode("latin-1"),
    }
    if evidence.cpu.event_log is not None:
        cpu["event_log"] = _b64(evidence.cpu.event_log.to_bytes())
    doc = {
        "format": FORMAT,
        "cpu": cpu,
        "gpus": [
            {
                "index": g.index,
                "report": _b64(g.report.to_bytes()),
                "certificates": g.certificates.decode("latin-1"),
                **({"cc_mode": g.cc_mode} if g.cc_mode != "unknown" else {}),
            }
            for g in evidence.gpus
        ],
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _field(obj: Any, name: str, typ: type, where: str) -> Any:
    if not isinstance(obj, dict) or not isinstance(obj.get(name), typ) or isinstance(obj.get(name), bool):
        raise EvidenceFormatError(f"missing or mistyped {name!r}", field=f"{where}.{name}")
    return obj[name]


def _latin1(text: str, field: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        raise EvidenceFormatError("certificates must be PEM text", field=field) from None


def _unb64(text: str, field: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise EvidenceFormatError("bad base64", field=field) from None


def decode_composite(data: bytes) -> CompositeEvidence:
    """Parses the JSON form; raises :class:`EvidenceFormatError` naming the field on any problem."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise EvidenceFormatError(f"not JSON: {e}", offset=0, field="composite") from None
    if _field(doc, "format", str, "composite") != FORMAT:
        raise EvidenceFormatError(f"unknown format {doc['format']!r}", field="composite.format")
    cpu = _field(doc, "cpu", dict, "composite")
    kind = _field(cpu, "kind", str, "cpu")
    raw = _unb64(_field(cpu, "report", str, "cpu"), "cpu.report")
    report: Any
    if is_extra(kind):
        report = tee(kind).parse(raw)
    elif kind in BUILTIN:
        report = parse_snp_report(raw) if kind == "snp" else parse_quote(raw)
    else:
        raise EvidenceFormatError(f"unknown CPU TEE kind {kind!r}", field="cpu.kind")
    if report.kind != kind:
        raise EvidenceFormatError(f"cpu.kind {kind!r} but the report is {report.kind!r}", field="cpu.kind")
    log = None
    if "event_log" in cpu:
        log = parse_ccel(_unb64(_field(cpu, "event_log", str, "cpu"), "cpu.event_log"))
    certs = _field(cpu, "certificates", str, "cpu")
    gpus = []
    for i, g in enumerate(_field(doc, "gpus", list, "composite")):
        mode = "unknown"  # what the attester did not report is left out of the document
        if isinstance(g, dict) and "cc_mode" in g:
            mode = _field(g, "cc_mode", str, f"gpus[{i}]")
            if mode not in ("on", "devtools"):
                raise EvidenceFormatError(f"{mode!r} is not one of on, devtools", field=f"gpus[{i}].cc_mode")
        gpus.append(
            GpuEvidence(
                index=_field(g, "index", int, f"gpus[{i}]"),
                report=parse_spdm_report(_unb64(_field(g, "report", str, f"gpus[{i}]"), f"gpus[{i}].report")),
                certificates=_latin1(_field(g, "certificates", str, f"gpus[{i}]"), f"gpus[{i}].certificates"),
                cc_mode=mode,
            )
        )
    try:
        return CompositeEvidence(CpuEvidence(report, _latin1(certs, "cpu.certificates"), log), tuple(gpus))
    except ValueError as e:
        raise EvidenceFormatError(str(e), field="gpus") from None
