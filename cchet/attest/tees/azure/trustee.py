"""Trustee's Azure vTPM evidence JSON (confidential-containers/trustee, ``az-snp-vtpm`` and ``az-tdx-vtpm``),
read into :class:`~cchet.attest.tees.azure.report.AzureVtpmReport`, and written back in its version-1 form.

Forms read (tried by their members, as trustee's untagged enum does):

- version 1: ``{"version": 1, "tpm_quote": {"signature": hex, "message": hex, "pcrs": [hex, ...]},
  "hcl_report": base64url, "vcek": base64url DER}`` (SNP) or ``... "td_quote": base64url}`` (TDX);
- version 0, SNP: ``{"quote": {"signature", "message", "pcrs"}, "report", "vcek": PEM}``, byte strings as JSON
  lists of integers;
- version 0, TDX: ``{"tpm_quote": {...}, "hcl_report", "td_quote"}``, byte strings as lists of integers.

Version 2 (which adds a check of the runtime data's ``user-data``) is refused by name. Every problem is an
:class:`~cchet.errors.EvidenceFormatError` naming the JSON member.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING, Any

from cchet.attest.formats.certchain import certificate_der
from cchet.attest.tees.azure.hcl import REPORT_TYPE_SNP, parse_hcl_report
from cchet.errors import EvidenceFormatError

if TYPE_CHECKING:
    from cchet.attest.tees.azure.report import AzureVtpmReport

__all__ = ["parse_trustee_evidence", "to_trustee_json"]


def _fail(message: str, field: str) -> EvidenceFormatError:
    return EvidenceFormatError(message, field=f"trustee.{field}")


def _int_list(value: object, field: str) -> bytes:
    if not isinstance(value, list) or not all(type(v) is int and 0 <= v <= 255 for v in value):
        raise _fail("expected a list of byte values", field)
    return bytes(value)


def _hex(value: object, field: str) -> bytes:
    if not isinstance(value, str):
        raise _fail("expected a hex string", field)
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise _fail("not hex", field) from None


def _b64url(value: object, field: str) -> bytes:
    if not isinstance(value, str) or not value.isascii():
        raise _fail("expected a base64url string", field)
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise _fail("not base64url", field) from None


def _member(doc: dict[str, Any], name: str, field: str) -> Any:
    if name not in doc:
        raise _fail(f"missing {name!r}", field)
    return doc[name]


def _quote(doc: object, field: str, decode: Any) -> tuple[bytes, bytes, bytes]:
    if not isinstance(doc, dict):
        raise _fail("expected an object with signature, message and pcrs", field)
    pcrs = _member(doc, "pcrs", field)
    if not isinstance(pcrs, list):
        raise _fail("expected a list of PCR values", f"{field}.pcrs")
    values = []
    for i, p in enumerate(pcrs):
        value = decode(p, f"{field}.pcrs[{i}]")
        if len(value) != 32:
            raise _fail(f"{len(value)} bytes, a SHA-256 PCR value is 32", f"{field}.pcrs[{i}]")
        values.append(value)
    return (
        decode(_member(doc, "message", field), f"{field}.message"),
        decode(_member(doc, "signature", field), f"{field}.signature"),
        b"".join(values),
    )


def parse_trustee_evidence(data: bytes) -> AzureVtpmReport:
    """Reads one of the JSON forms of the module docstring. Raises :class:`EvidenceFormatError`."""
    from cchet.attest.tees.azure.report import assemble

    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise EvidenceFormatError(f"not JSON: {e}", offset=0, field="trustee") from None
    if not isinstance(doc, dict):
        raise _fail("expected a JSON object", "evidence")
    version = doc.get("version", 0)
    if "version" in doc and (type(version) is not int or version != 1):
        raise _fail(f"evidence version {version!r} is not supported (0 and 1 are)", "version")
    if "version" in doc:
        message, signature, pcrs = _quote(_member(doc, "tpm_quote", "evidence"), "tpm_quote", _hex)
        hcl_raw = _b64url(_member(doc, "hcl_report", "evidence"), "hcl_report")
        hw_name = "td_quote" if "td_quote" in doc else "vcek"
        hardware = _b64url(_member(doc, hw_name, "evidence"), hw_name)
    elif "quote" in doc:
        message, signature, pcrs = _quote(doc["quote"], "quote", _int_list)
        hcl_raw = _int_list(_member(doc, "report", "evidence"), "report")
        hw_name = "vcek"
        pem = _member(doc, "vcek", "evidence")
        if not isinstance(pem, str) or not pem.isascii():
            raise _fail("expected a PEM certificate", "vcek")
        hardware = certificate_der(pem.encode(), "trustee.vcek")
    else:
        message, signature, pcrs = _quote(_member(doc, "tpm_quote", "evidence"), "tpm_quote", _int_list)
        hcl_raw = _int_list(_member(doc, "hcl_report", "evidence"), "hcl_report")
        hw_name = "td_quote"
        hardware = _int_list(_member(doc, "td_quote", "evidence"), "td_quote")
    hcl = parse_hcl_report(hcl_raw)
    if (hcl.report_type == REPORT_TYPE_SNP) != (hw_name == "vcek"):
        raise _fail(f"{hw_name!r} does not go with an HCL report of type {hcl.report_type}", hw_name)
    return assemble(hcl, message, signature, pcrs, hardware, offsets=(0, 0, 0, 0))


def to_trustee_json(report: AzureVtpmReport) -> bytes:
    """The evidence in trustee's version-1 JSON form (what trustee's ``az-snp-vtpm`` / ``az-tdx-vtpm``
    verifiers read)."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode()

    doc: dict[str, Any] = {
        "version": 1,
        "tpm_quote": {
            "signature": report.quote.signature.hex(),
            "message": report.quote.message.hex(),
            "pcrs": [p.hex() for p in report.pcrs],
        },
        "hcl_report": b64(report.hcl.to_bytes()),
    }
    if report.td_quote is not None:
        doc["td_quote"] = b64(report.td_quote.to_bytes())
    else:
        doc["vcek"] = b64(report.vcek)
    return json.dumps(doc, indent=2).encode()
