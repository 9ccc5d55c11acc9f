"""Policy tables of the Azure kinds (``az_snp``, ``az_tdx``), their rules, claims and reference values.

``[az_snp]``: ``measurement`` (SNP launch measurements, 48-byte hex, any one may match), ``host_data`` (32-byte
hex), ``min_tcb`` (``[bootloader, tee, snp, microcode]`` or a table of those names: the reported TCB must
reach each), ``vmpl`` (the VMPL that requested the report; default 0), ``allow_migration_agent`` (guest policy
bit 18; default false) and ``pcrs``.

``[az_tdx]``: ``mrtd``, ``rtmr0`` .. ``rtmr3``, ``mrconfigid`` (48-byte hex lists; the TD quote's values) and
``pcrs``.

``pcrs`` is a table from PCR number (``"0"`` .. ``"23"``) to accepted SHA-256 values (32-byte hex): each listed
PCR must be quoted and hold one of them. A table *pins* the measurements (``measurements = "pinned"``) when it
lists an SNP measurement, a TD measurement (MRTD or an RTMR) or a PCR. The vTPM's PCRs measure the guest's
boot chain (firmware 0-7, boot loader 4, Secure Boot 7, kernel command line 8, UKI 11); the hardware
measurement covers the paravisor and firmware Azure runs, not the guest OS.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cchet.attest.formats.dcap import TdReportBody
from cchet.attest.formats.snp import POLICY_MIGRATE_MA, POLICY_SMT, SnpReport
from cchet.attest.tees.azure.report import AzureVtpmReport
from cchet.attest.tees.azure.runtime_data import user_data

__all__ = ["REFERENCE_PCRS", "check_section", "claims", "evaluate", "pins", "reference"]

Fail = Callable[[str, str, Any, Any], None]

REFERENCE_PCRS = (4, 7, 8, 9, 11)
"""The PCRs ``cchet policy from-evidence`` pins: boot loader and kernel (4), Secure Boot state (7), command line
or init data (8), the files the boot loader read (9), the unified kernel image (11). Firmware PCRs (0-3) change
with Azure's host updates and are left out; edit the policy to pin them."""
_TCB_NAMES = ("bootloader", "tee", "snp", "microcode")
_HEX_FIELDS = {
    "az_snp": {"measurement": 48, "host_data": 32},
    "az_tdx": {"mrtd": 48, "rtmr0": 48, "rtmr1": 48, "rtmr2": 48, "rtmr3": 48, "mrconfigid": 48},
}
_OTHER_FIELDS = {"az_snp": ("min_tcb", "vmpl", "allow_migration_agent", "pcrs"), "az_tdx": ("pcrs",)}
_PINS = {"az_snp": ("measurement",), "az_tdx": ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3")}


def _hex_list(where: str, value: object, size: int) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError(f"{where}: expected a list of hex strings")
    out = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"{where}: expected hex strings, got {type(item).__name__}")
        text = item.lower().removeprefix("0x")
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise ValueError(f"{where}: {item!r} is not hex") from None
        if len(raw) != size:
            raise ValueError(f"{where}: {item!r} is {len(raw)} bytes, expected exactly {size}")
        out.append(text)
    return tuple(out)


def _min_tcb(where: str, value: object) -> tuple[int, ...]:
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(_TCB_NAMES))
        if unknown or set(value) != set(_TCB_NAMES):
            raise ValueError(f"{where}: expected the fields {', '.join(_TCB_NAMES)}")
        value = [value[name] for name in _TCB_NAMES]
    if (
        not isinstance(value, list | tuple)
        or len(value) != 4
        or not all(type(v) is int and 0 <= v <= 255 for v in value)
    ):
        raise ValueError(f"{where}: expected [bootloader, tee, snp, microcode], each 0..255")
    return tuple(value)


def _pcrs(where: str, value: object) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a table from PCR number to accepted values")
    out = {}
    for key, values in value.items():
        text = str(key)
        if not text.isdigit() or not 0 <= int(text) <= 23:
            raise ValueError(f"{where}: {key!r} is not a PCR number 0..23")
        out[str(int(text))] = _hex_list(f"{where}.{int(text)}", values, 32)
    return dict(sorted(out.items(), key=lambda kv: int(kv[0])))


def check_section(section: str, table: Mapping[str, Any]) -> dict[str, Any]:
    """The ``section`` (``az_snp`` or ``az_tdx``) table validated and normalised; ``ValueError`` naming
    ``policy.<section>.<field>``, unknown fields included."""
    valid = (*_HEX_FIELDS[section], *_OTHER_FIELDS[section])
    unknown = sorted(str(k) for k in table if k not in valid)
    if unknown:
        raise ValueError(f"policy.{section}: unknown field(s) {', '.join(unknown)}; valid fields: {', '.join(valid)}")
    out: dict[str, Any] = {}
    for name, value in table.items():
        where = f"policy.{section}.{name}"
        if name in _HEX_FIELDS[section]:
            out[name] = _hex_list(where, value, _HEX_FIELDS[section][name])
        elif name == "pcrs":
            out[name] = _pcrs(where, value)
        elif name == "min_tcb":
            out[name] = _min_tcb(where, value)
        elif name == "vmpl":
            if type(value) is not int or value not in (0, 1, 2, 3):
                raise ValueError(f"{where}: expected 0..3")
            out[name] = value
        else:  # allow_migration_agent
            if not isinstance(value, bool):
                raise ValueError(f"{where}: expected true or false")
            out[name] = value
    return out


def pins(section: str, table: Mapping[str, Any]) -> bool:
    """Whether the table pins a hardware measurement or a PCR."""
    return any(table.get(name) for name in _PINS[section]) or any(table.get("pcrs", {}).values())


def _one_of(fail: Fail, rule: str, evidence_field: str, allowed: tuple[str, ...], actual: bytes) -> None:
    if allowed and actual.hex() not in allowed:
        fail(rule, evidence_field, "one of " + ", ".join(allowed), actual.hex())


def _evaluate_pcrs(report: AzureVtpmReport, section: str, table: Mapping[str, Any], fail: Fail) -> None:
    values = report.pcr_values()
    for index, allowed in table.get("pcrs", {}).items():
        field = f"tpm.pcr{int(index):02d}"
        got = values.get(int(index))
        if got is None:
            fail(f"{section}.pcrs", field, "one of " + ", ".join(allowed), "not quoted")
        else:
            _one_of(fail, f"{section}.pcrs", field, allowed, got)


def evaluate(report: AzureVtpmReport, section: str, table: Mapping[str, Any], fail: Fail) -> None:
    """Apply the table's rules (and the defaults: VMPL 0, no migration agent) to a verified report."""
    hw = report.hcl.hardware
    if isinstance(hw, SnpReport):
        _one_of(fail, "az_snp.measurement", "snp_report.measurement", table.get("measurement", ()), hw.measurement)
        _one_of(fail, "az_snp.host_data", "snp_report.host_data", table.get("host_data", ()), hw.host_data)
        floor = table.get("min_tcb")
        if floor is not None:
            t = hw.tcb("reported")
            got = [t.bootloader, t.tee, t.snp, t.microcode]
            if any(g < w for g, w in zip(got, floor, strict=True)):
                fail("az_snp.min_tcb", "snp_report.reported_tcb", f">= {list(floor)}", got)
        vmpl = table.get("vmpl", 0)
        if hw.vmpl != vmpl:
            fail("az_snp.vmpl", "snp_report.vmpl", vmpl, hw.vmpl)
        if hw.policy & POLICY_MIGRATE_MA and not table.get("allow_migration_agent", False):
            fail("az_snp.allow_migration_agent", "snp_report.policy.MIGRATE_MA", "false", "true")
    elif report.td_quote is not None and isinstance(report.td_quote.body, TdReportBody):
        body = report.td_quote.body
        _one_of(fail, "az_tdx.mrtd", "td_quote.mr_td", table.get("mrtd", ()), body.mr_td)
        for i in range(4):
            _one_of(fail, f"az_tdx.rtmr{i}", f"td_quote.rtmr{i}", table.get(f"rtmr{i}", ()), body.rtmrs[i])
        _one_of(fail, "az_tdx.mrconfigid", "td_quote.mr_config_id", table.get("mrconfigid", ()), body.mr_config_id)
    _evaluate_pcrs(report, section, table, fail)


def _pcr_claims(report: AzureVtpmReport) -> dict[str, Any]:
    values = report.pcr_values()
    return {
        "pcrs": {str(i): v.hex() for i, v in sorted(values.items())},
        "init_data": values[8].hex() if 8 in values else None,
        "user_data": user_data(report.hcl.runtime_data),
        "hcl_report_version": report.hcl.version,
    }


def claims(report: AzureVtpmReport) -> dict[str, Any]:
    """Normalised claims: the hardware report's (from the TD quote for TDX), the PCRs by number,
    ``init_data`` (PCR 8, as trustee names it) and the runtime data's ``user_data``."""
    hw = report.hcl.hardware
    out: dict[str, Any] = {"kind": report.kind}
    if isinstance(hw, SnpReport):
        tcb = hw.tcb("reported")
        out.update(
            {
                "measurement": hw.measurement.hex(),
                "host_data": hw.host_data.hex(),
                "policy": f"{hw.policy:#x}",
                "smt_allowed": bool(hw.policy & POLICY_SMT),
                "migration_agent_allowed": bool(hw.policy & POLICY_MIGRATE_MA),
                "vmpl": hw.vmpl,
                "reported_tcb": [tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode],
                "chip_id": hw.chip_id.hex(),
                "snp_report_version": hw.version,
                "debug": hw.debug,
            }
        )
    elif report.td_quote is not None and isinstance(report.td_quote.body, TdReportBody):
        body = report.td_quote.body
        out.update(
            {
                "mrtd": body.mr_td.hex(),
                **{f"rtmr{i}": body.rtmrs[i].hex() for i in range(4)},
                "mrconfigid": body.mr_config_id.hex(),
                "mrowner": body.mr_owner.hex(),
                "mrownerconfig": body.mr_owner_config.hex(),
                "mrseam": body.mr_seam.hex(),
                "td_attributes": body.td_attributes.hex(),
                "xfam": body.xfam.hex(),
                "tee_tcb_svn": body.tee_tcb_svn.hex(),
                "debug": body.debug,
            }
        )
    out.update(_pcr_claims(report))
    return out


def reference(report: AzureVtpmReport) -> dict[str, Any]:
    """The table values that pin ``report``: the hardware measurement (SNP measurement and reported TCB as
    ``min_tcb``; TDX MRTD) and the :data:`REFERENCE_PCRS` it quotes."""
    values = report.pcr_values()
    pcrs = {str(i): [values[i].hex()] for i in REFERENCE_PCRS if i in values}
    hw = report.hcl.hardware
    if isinstance(hw, SnpReport):
        t = hw.tcb("reported")
        return {
            "measurement": [hw.measurement.hex()],
            "min_tcb": dict(zip(_TCB_NAMES, (t.bootloader, t.tee, t.snp, t.microcode), strict=True)),
            "pcrs": pcrs,
        }
    body = report.td_quote.body if report.td_quote is not None else None
    if not isinstance(body, TdReportBody):  # the parser pairs every TDX HCL report with a TDX quote
        raise ValueError("az-tdx evidence without its TD quote")
    return {"mrtd": [body.mr_td.hex()], "pcrs": pcrs}
