"""Trustee's CSV evidence document: the JSON a Hygon CSV guest's attestation agent sends (and the conformance
fixture holds).

``{"attestation_report": {"magic": [16], "flags": u32, "data": [4096]}, "cert_chain": {"pek": <CSV-format
certificate>, "hsk_cek"?: {"hsk": <CA-format>, "cek": <CSV-format>}}, "serial_number": [bytes], "cc_eventlog":
base64 or null}``, byte arrays as JSON integer lists, certificates as their fields (serde's names). Parsing reads
exactly that shape (unknown or missing keys, wrong types and lengths are :class:`EvidenceFormatError` naming the
JSON field) into :class:`CsvEvidence`, whose ``to_bytes`` writes it back with sorted keys and no spaces: the
exact bytes of documents written that way, the fixture's included.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cchet.attest.tees.csv.certs import (
    CaCertificate,
    CsvCertificate,
    CsvSignatureSlot,
    HygonCertificate,
)
from cchet.attest.tees.csv.report import SIMULATED_MARK, CsvReport, parse_csv_report
from cchet.errors import EvidenceFormatError

__all__ = ["CsvEvidence", "parse_csv_evidence"]


@dataclass(frozen=True)
class CsvEvidence:
    """A trustee CSV evidence document: the report, the PEK (and HSK/CEK when the agent had them), the chip
    serial number and the CC event log (base64 text, kept as given)."""

    report: CsvReport
    pek: CsvCertificate
    serial: bytes
    hsk: CaCertificate | None = None
    cek: CsvCertificate | None = None
    cc_eventlog: str | None = None

    kind = "csv"

    @property
    def report_data(self) -> bytes:
        return self.report.report_data

    @property
    def serial_number(self) -> str:
        return self.serial.rstrip(b"\0").decode("ascii", "replace")

    @property
    def simulated(self) -> bool:
        """Whether it names a SIMULATED chip or key: a label, not a verification."""
        return self.report.simulated or SIMULATED_MARK in self.serial or SIMULATED_MARK in self.pek.user_id

    def certificates(self) -> tuple[HygonCertificate, ...]:
        """The certificates the document carries: HSK and CEK (when present), then the PEK."""
        return (*((self.hsk, self.cek) if self.hsk and self.cek else ()), self.pek)

    def to_json(self) -> dict[str, Any]:
        chain: dict[str, Any] = {"pek": _csv_json(self.pek)}
        if self.hsk is not None and self.cek is not None:
            chain["hsk_cek"] = {"hsk": _ca_json(self.hsk), "cek": _csv_json(self.cek)}
        report = self.report.to_bytes()
        return {
            "attestation_report": {"magic": list(report[:16]), "flags": self.report.flags, "data": list(report[20:])},
            "cert_chain": chain,
            "serial_number": list(self.serial),
            "cc_eventlog": self.cc_eventlog,
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()


def _b(data: bytes) -> list[int]:
    return list(data)


def _csv_json(cert: CsvCertificate) -> dict[str, Any]:
    return {
        "body": {
            "ver": cert.version,
            "data": {
                "firmware": {"major": cert.firmware_major, "minor": cert.firmware_minor},
                "reserved1": cert.reserved0,
                "pubkey": {
                    "usage": cert.usage,
                    "algo": cert.algo,
                    "key": {"g": cert.curve, "x": _b(cert.x), "y": _b(cert.y)},
                },
                "uid_size": cert.uid_size,
                "user_id": _b(cert.user_id),
                "sid": _b(cert.sid),
                "reserved2": _b(cert.reserved1),
            },
        },
        "sigs": [
            {
                "usage": s.usage,
                "algo": s.algo,
                "signature": {"r": _b(s.r), "s": _b(s.s)},
                "_reserved": _b(s.reserved),
            }
            for s in cert.slots
        ],
    }


def _ca_json(cert: CaCertificate) -> dict[str, Any]:
    return {
        "body": {
            "preamble": {
                "ver": cert.version,
                "data": {
                    "kid": _b(cert.key_id),
                    "sid": _b(cert.certifying_id),
                    "usage": cert.usage,
                    "reserved": _b(cert.reserved0),
                },
            },
            "pubkey": {"g": cert.curve, "x": _b(cert.x), "y": _b(cert.y)},
            "uid_size": cert.uid_size,
            "user_id": _b(cert.user_id),
            "reserved": _b(cert.reserved1),
        },
        "signature": {"r": _b(cert.signature_r), "s": _b(cert.signature_s)},
        "_reserved": _b(cert.reserved2),
    }


class _Reader:
    """Strict access to one JSON object: exactly the keys expected, each of its type; errors name the path."""

    def __init__(self, obj: Any, path: str, keys: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
        if not isinstance(obj, Mapping):
            raise EvidenceFormatError("expected a JSON object", field=path)
        unknown = sorted(set(obj) - set(keys) - set(optional))
        missing = sorted(set(keys) - set(obj))
        if unknown or missing:
            what = [f"unknown key(s) {', '.join(unknown)}"] if unknown else []
            what += [f"missing key(s) {', '.join(missing)}"] if missing else []
            raise EvidenceFormatError("; ".join(what), field=path)
        self.obj = obj
        self.path = path

    def has(self, key: str) -> bool:
        return key in self.obj

    def sub(self, key: str, keys: tuple[str, ...], optional: tuple[str, ...] = ()) -> _Reader:
        return _Reader(self.obj[key], f"{self.path}.{key}", keys, optional)

    def uint(self, key: str, bits: int) -> int:
        v = self.obj[key]
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 1 << bits:
            raise EvidenceFormatError(f"expected an unsigned {bits}-bit integer", field=f"{self.path}.{key}")
        return v

    def bytes_(self, key: str, size: int | None) -> bytes:
        v = self.obj[key]
        where = f"{self.path}.{key}"
        if not isinstance(v, list) or any(
            isinstance(b, bool) or not isinstance(b, int) or not 0 <= b <= 255 for b in v
        ):
            raise EvidenceFormatError("expected a list of byte values", field=where)
        if size is not None and len(v) != size:
            raise EvidenceFormatError(f"expected {size} bytes, got {len(v)}", field=where)
        return bytes(v)


def _csv_cert(r: _Reader) -> CsvCertificate:
    body = r.sub("body", ("ver", "data"))
    data = body.sub("data", ("firmware", "reserved1", "pubkey", "uid_size", "user_id", "sid", "reserved2"))
    fw = data.sub("firmware", ("major", "minor"))
    pub = data.sub("pubkey", ("usage", "algo", "key"))
    key = pub.sub("key", ("g", "x", "y"))
    sigs = r.obj["sigs"]
    if not isinstance(sigs, list) or len(sigs) != 2:
        raise EvidenceFormatError("expected two signature slots", field=f"{r.path}.sigs")
    slots = []
    for i, raw in enumerate(sigs):
        s = _Reader(raw, f"{r.path}.sigs[{i}]", ("usage", "algo", "signature", "_reserved"))
        sig = s.sub("signature", ("r", "s"))
        slots.append(
            CsvSignatureSlot(
                usage=s.uint("usage", 32),
                algo=s.uint("algo", 32),
                r=sig.bytes_("r", 72),
                s=sig.bytes_("s", 72),
                reserved=s.bytes_("_reserved", 368),
            )
        )
    uid_size = _uid_size(data)
    return CsvCertificate(
        version=body.uint("ver", 32),
        firmware_major=fw.uint("major", 8),
        firmware_minor=fw.uint("minor", 8),
        reserved0=data.uint("reserved1", 16),
        usage=pub.uint("usage", 32),
        algo=pub.uint("algo", 32),
        curve=key.uint("g", 32),
        x=key.bytes_("x", 72),
        y=key.bytes_("y", 72),
        uid_size=uid_size,
        user_id=data.bytes_("user_id", 254),
        sid=data.bytes_("sid", 16),
        reserved1=data.bytes_("reserved2", 608),
        slots=(slots[0], slots[1]),
    )


def _uid_size(r: _Reader) -> int:
    """The length of the user ID that follows (a certificate's ``user_id`` field holds at most 254 bytes)."""
    size = r.uint("uid_size", 16)
    if size > 254:
        raise EvidenceFormatError(f"ID length {size} exceeds its 254-byte field", field=f"{r.path}.uid_size")
    return size


def _ca_cert(r: _Reader) -> CaCertificate:
    body = r.sub("body", ("preamble", "pubkey", "uid_size", "user_id", "reserved"))
    pre = body.sub("preamble", ("ver", "data"))
    pdata = pre.sub("data", ("kid", "sid", "usage", "reserved"))
    key = body.sub("pubkey", ("g", "x", "y"))
    sig = r.sub("signature", ("r", "s"))
    uid_size = _uid_size(body)
    return CaCertificate(
        version=pre.uint("ver", 32),
        key_id=pdata.bytes_("kid", 16),
        certifying_id=pdata.bytes_("sid", 16),
        usage=pdata.uint("usage", 32),
        reserved0=pdata.bytes_("reserved", 24),
        curve=key.uint("g", 32),
        x=key.bytes_("x", 72),
        y=key.bytes_("y", 72),
        uid_size=uid_size,
        user_id=body.bytes_("user_id", 254),
        reserved1=body.bytes_("reserved", 108),
        signature_r=sig.bytes_("r", 72),
        signature_s=sig.bytes_("s", 72),
        reserved2=r.bytes_("_reserved", 112),
    )


def parse_csv_evidence(data: bytes) -> CsvEvidence:
    """Parses a trustee CSV evidence document; raises :class:`EvidenceFormatError` naming the JSON field."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise EvidenceFormatError(f"not JSON: {e}", offset=0, field="csv_evidence") from None
    top = _Reader(doc, "csv_evidence", ("attestation_report", "cert_chain", "serial_number", "cc_eventlog"))
    rep = top.sub("attestation_report", ("magic", "flags", "data"))
    wrapper = rep.bytes_("magic", 16) + rep.uint("flags", 32).to_bytes(4, "little") + rep.bytes_("data", 4096)
    report = parse_csv_report(wrapper)
    chain = top.sub("cert_chain", ("pek",), ("hsk_cek",))
    pek = _csv_cert(chain.sub("pek", ("body", "sigs")))
    hsk = cek = None
    if chain.has("hsk_cek"):
        pair = chain.sub("hsk_cek", ("hsk", "cek"))
        hsk = _ca_cert(pair.sub("hsk", ("body", "signature", "_reserved")))
        cek = _csv_cert(pair.sub("cek", ("body", "sigs")))
    log = doc.get("cc_eventlog")
    if log is not None and not isinstance(log, str):
        raise EvidenceFormatError("expected base64 text or null", field="csv_evidence.cc_eventlog")
    return CsvEvidence(report, pek, top.bytes_("serial_number", None), hsk, cek, log)
