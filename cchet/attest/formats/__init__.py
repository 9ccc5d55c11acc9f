"""Evidence formats: bytes in, frozen dataclasses out, and back.

:func:`parse` recognises the format from the bytes (or takes ``kind``), :func:`serialize` is its exact
inverse: ``serialize(parse(b)) == b`` for every binary input that parses. Hex text (as vendors ship GPU
reports and some quotes) is decoded first; its ``serialize`` is then the binary form. Parsers check
sizes, versions and reserved fields only and raise :class:`~cchet.errors.EvidenceFormatError` naming the
offset and field; no signature is checked here (that is :mod:`cchet.attest.verify`).
"""

from __future__ import annotations

import binascii
import string
from typing import TYPE_CHECKING, Any, Union

from cchet.attest.formats.ccel import SPEC_ID_SIGNATURE, CcEventLog, parse_ccel
from cchet.attest.formats.dcap import Quote, parse_quote
from cchet.attest.formats.snp import REPORT_SIZE, SnpReport, parse_snp_report
from cchet.attest.formats.spdm import SpdmReport, parse_spdm_report
from cchet.attest.tees import EXTRA, is_extra, tee, tees
from cchet.errors import EvidenceFormatError

if TYPE_CHECKING:
    from cchet.attest.evidence import CompositeEvidence
    from cchet.attest.formats.certchain import CertificateChain

__all__ = ["KINDS", "ParsedEvidence", "detect_kind", "parse", "serialize"]

ParsedEvidence = Union[Quote, SnpReport, SpdmReport, CcEventLog, "CompositeEvidence", "CertificateChain", Any]

KINDS = ("auto", "quote", "tdx", "sgx", "snp", "spdm", "ccel", "composite", "pem-chain", *EXTRA)
_HEX = set((string.hexdigits + string.whitespace).encode())


def _maybe_hex(data: bytes) -> bytes | None:
    text = data.strip()
    if text[:2] in (b"0x", b"0X"):
        text = text[2:]
    if len(text) < 2 or not set(text) <= _HEX:
        return None
    try:
        return binascii.unhexlify(b"".join(text.split()))
    except (binascii.Error, ValueError):
        return None


def detect_kind(data: bytes) -> str:
    """The format of ``data``: one of ``KINDS`` other than ``auto``; raises if unrecognised. JSON is cchet's
    composite evidence unless a TEE family recognises it as its own (trustee's Azure and CSV evidence)."""
    head = data.lstrip()[:32]
    if head.startswith(b"{"):  # cchet's composite document, unless a family recognises another project's JSON
        return next((family.kind for family in tees() if family.detect(data)), "composite")
    if head.startswith(b"-----BEGIN"):
        return "pem-chain"
    if len(data) >= 4 and int.from_bytes(data[:2], "little") in (3, 4, 5) and data[2:4] == b"\x02\x00":
        return "quote"
    if len(data) >= 2 and data[1] == 0xE0 and data[0] in (0x10, 0x11, 0x12, 0x13):
        return "spdm"
    if data[32:48] == SPEC_ID_SIGNATURE:
        return "ccel"
    if len(data) == REPORT_SIZE and 2 <= int.from_bytes(data[:4], "little") <= 15:
        return "snp"
    for family in tees():
        if family.detect(data):
            return family.kind
    raise EvidenceFormatError("unrecognised evidence format", offset=0, field="kind")


def parse(data: bytes, kind: str = "auto") -> ParsedEvidence:
    """Parses evidence bytes (or hex text) into its typed form.

    ``kind`` is ``"auto"`` (detect from the bytes) or one of :data:`KINDS`. Returns a :class:`Quote`
    (TDX or SGX), :class:`SnpReport`, :class:`SpdmReport`, :class:`CcEventLog`, :class:`CertificateChain`,
    :class:`CompositeEvidence` or a TEE family's report (:mod:`cchet.attest.tees`). Raises
    :class:`EvidenceFormatError` naming the offset and field when the bytes do not parse, ``ValueError`` for an
    unknown ``kind``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown evidence kind {kind!r}; expected one of {', '.join(KINDS)}")
    data = bytes(data)
    if kind == "auto":
        decoded = _maybe_hex(data)
        if decoded is not None:
            data = decoded
        kind = detect_kind(data)
    elif kind in ("quote", "tdx", "sgx", "snp", "spdm", "ccel", *EXTRA):
        decoded = _maybe_hex(data)
        data = decoded if decoded is not None else data
    result: ParsedEvidence
    if is_extra(kind):
        result = tee(kind).parse(data)
    elif kind in ("quote", "tdx", "sgx"):
        result = parse_quote(data)
        if kind not in ("quote", result.kind):
            raise EvidenceFormatError(
                f"expected a {kind} quote, found {result.kind}", offset=4, field="header.tee_type"
            )
    elif kind == "snp":
        result = parse_snp_report(data)
    elif kind == "spdm":
        result = parse_spdm_report(data)
    elif kind == "ccel":
        result = parse_ccel(data)
    elif kind == "pem-chain":
        from cchet.attest.formats.certchain import parse_pem_chain  # loads cryptography's x509: import late

        result = parse_pem_chain(data)
    else:
        from cchet.attest.evidence import decode_composite  # evidence imports these parsers: import late

        result = decode_composite(data)
    return result


def serialize(evidence: ParsedEvidence) -> bytes:
    """The exact bytes of ``evidence``: the inverse of :func:`parse` on binary input."""
    return evidence.to_bytes()
