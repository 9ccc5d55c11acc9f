"""The ``csv`` policy table, claims and reference values of Hygon CSV reports.

The table (``Policy(csv={...})``, ``[csv]`` in a policy file), every field optional:

| field | type | checks (evidence field) |
|---|---|---|
| ``measurement`` | hex list (32 bytes) | ``measure``, the SM3 launch digest (what ``measurements="pinned"`` needs) |
| ``user_pubkey_digest`` | hex list (32 bytes) | ``user_pubkey_digest`` |
| ``vm_id``, ``vm_version`` | hex lists (16 bytes) | ``vm_id``, ``vm_version`` |
| ``rtmr1`` .. ``rtmr4`` | hex lists (32 bytes) | a V2 report's RTMRs (a V1 report has none: it fails them) |
| ``min_firmware`` | ``"major.minor"`` | the firmware API version in the PEK certificate (signed by the CEK) |
| ``min_build`` | integer | the V2 report's firmware ``build`` (a V1 report has none) |
| ``require_noks``, ``require_es`` | bool | guest policy bit NOKS (1), ES (2) set |
| ``require_nosend``, ``require_csv3`` | bool | guest policy bit NOSEND (3), CSV3 (6) set |

Debugging (policy bit 0, NODBG, clear) is the global ``allow_debug`` rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cchet.attest.tees import Fail
from cchet.attest.tees.csv.evidence import CsvEvidence
from cchet.attest.tees.csv.report import POLICY_BITS, CsvReport
from cchet.errors import EvidenceFormatError

__all__ = ["FIELDS", "check_section", "claims", "csv_report", "evaluate", "pins", "reference"]

HEX_FIELDS = {
    "measurement": 32,
    "user_pubkey_digest": 32,
    "vm_id": 16,
    "vm_version": 16,
    "rtmr1": 32,
    "rtmr2": 32,
    "rtmr3": 32,
    "rtmr4": 32,
}
BIT_FIELDS = {"require_noks": 1, "require_es": 2, "require_nosend": 3, "require_csv3": 6}
FIELDS = (*HEX_FIELDS, "min_firmware", "min_build", *BIT_FIELDS)
_VERSION = re.compile(r"^(\d{1,3})\.(\d{1,3})$")
_EVIDENCE_FIELD = {"measurement": "csv.measure"}


def csv_report(report: CsvReport | CsvEvidence) -> CsvReport:
    """The report wrapper of a report or an evidence document."""
    return report.report if isinstance(report, CsvEvidence) else report


def _hex_list(name: str, value: Any, size: int) -> list[str]:
    where = f"policy.csv.{name}"
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValueError(f"{where}: expected a list of {size}-byte hex values")
    out: list[str] = []
    for item in value:
        if not isinstance(item, str) or not re.fullmatch(r"[0-9a-fA-F]*", item) or len(item) != 2 * size:
            raise ValueError(f"{where}: {item!r} is not {size} bytes of hex")
        if item.lower() not in out:
            out.append(item.lower())
    return out


def check_section(section: Mapping[str, Any]) -> dict[str, Any]:
    """The table validated and normalised (lowercase hex lists); ``ValueError`` naming ``policy.csv.<field>``."""
    unknown = sorted(set(section) - set(FIELDS))
    if unknown:
        raise ValueError(f"policy.csv: unknown field(s) {', '.join(unknown)}; valid fields: {', '.join(FIELDS)}")
    out: dict[str, Any] = {}
    for name, value in section.items():
        if name in HEX_FIELDS:
            out[name] = _hex_list(name, value, HEX_FIELDS[name])
        elif name == "min_firmware":
            if not isinstance(value, str) or not _VERSION.match(value):
                raise ValueError('policy.csv.min_firmware: expected "major.minor" (e.g. "1.4")')
            major, minor = _VERSION.match(value).groups()  # type: ignore[union-attr]
            if int(major) > 255 or int(minor) > 255:
                raise ValueError("policy.csv.min_firmware: major and minor are 0..255")
            out[name] = f"{int(major)}.{int(minor)}"
        elif name == "min_build":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 32:
                raise ValueError("policy.csv.min_build: expected an unsigned 32-bit integer")
            out[name] = value
        else:
            if not isinstance(value, bool):
                raise ValueError(f"policy.csv.{name}: expected true or false")
            out[name] = value
    return out


def pins(section: Mapping[str, Any]) -> bool:
    """Whether the table pins the launch measurement."""
    return bool(section.get("measurement"))


def _values(report: CsvReport) -> dict[str, str | None]:
    rtmrs = report.tee_info.rtmrs
    out: dict[str, str | None] = {
        "measurement": report.measurement.hex(),
        "user_pubkey_digest": report.user_pubkey_digest.hex(),
        "vm_id": report.vm_id.hex(),
        "vm_version": report.vm_version.hex(),
    }
    for i in range(1, 5):
        out[f"rtmr{i}"] = rtmrs[i].hex() if rtmrs else None
    return out


def evaluate(report: CsvReport | CsvEvidence, section: Mapping[str, Any], fail: Fail) -> None:
    """Applies the table to a verified report, calling ``fail`` for each violated field."""
    from cchet.attest.tees.csv.verify import report_pek

    r = csv_report(report)
    values = _values(r)
    for name in HEX_FIELDS:
        if section.get(name):
            actual = values[name]
            if actual is None:
                fail(f"csv.{name}", f"csv.{name}", list(section[name]), f"absent (a V{r.version} report has no RTMRs)")
            elif actual not in section[name]:
                fail(f"csv.{name}", _EVIDENCE_FIELD.get(name, f"csv.{name}"), list(section[name]), actual)
    if "min_firmware" in section:
        want = tuple(int(p) for p in section["min_firmware"].split("."))
        have = report_pek(report).firmware
        if have < want:
            fail("csv.min_firmware", "csv.pek.firmware", f">= {section['min_firmware']}", f"{have[0]}.{have[1]}")
    if "min_build" in section:
        if r.version == 1:
            fail("csv.min_build", "csv.build", f">= {section['min_build']}", "absent (a V1 report has no build)")
        elif r.tee_info.build < section["min_build"]:
            fail("csv.min_build", "csv.build", f">= {section['min_build']}", r.tee_info.build)
    for name, bit in BIT_FIELDS.items():
        if section.get(name) and not r.policy >> bit & 1:
            fail(f"csv.{name}", f"csv.policy.{POLICY_BITS[bit]}", True, False)


def reference(report: CsvReport | CsvEvidence) -> dict[str, Any]:
    """The table values that pin this report: its measurement, user key digest, VM id and version, and for V2
    its RTMR1..4."""
    values = _values(csv_report(report))
    return {name: [v] for name, v in values.items() if v is not None}


def claims(report: CsvReport | CsvEvidence) -> dict[str, Any]:
    """Normalised claims (hex strings), in trustee's vocabulary where it has one."""
    from cchet.attest.tees.csv.verify import report_pek

    r = csv_report(report)
    policy = r.policy
    bits: dict[str, Any] = {name: bool(policy >> i & 1) for i, name in enumerate(POLICY_BITS)}
    bits.update(
        hsk_version=policy >> 8 & 0xF,
        cek_version=policy >> 12 & 0xF,
        api_major=policy >> 16 & 0xFF,
        api_minor=policy >> 24 & 0xFF,
    )
    out: dict[str, Any] = {
        "kind": "csv",
        "version": r.version,
        "policy": bits,
        "policy_raw": f"{policy:#010x}",
        "user_pubkey_digest": r.user_pubkey_digest.hex(),
        "vm_id": r.vm_id.hex(),
        "vm_version": r.vm_version.hex(),
        "report_data": r.report_data.hex(),
        "mnonce": r.mnonce.hex(),
        "measurement": r.measurement.hex(),
        "sig_usage": f"{r.sig_usage:#x}",
        "sig_algo": r.sig_algo,
        "serial_number": report.serial_number,
        "debug": r.debug,
    }
    try:
        major, minor = report_pek(report).firmware
        out["firmware"] = f"{major}.{minor}"
    except EvidenceFormatError:  # an undecodable signer block: verification says so
        pass
    if r.version == 1:
        out["anonce"] = f"{r.tee_info.anonce:08x}"
    else:
        out.update(build=r.tee_info.build, rtmr_version=r.tee_info.rtmr_version)
        out.update({f"rtmr{i}": v.hex() for i, v in enumerate(r.tee_info.rtmrs)})
    return out
