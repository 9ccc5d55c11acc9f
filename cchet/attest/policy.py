"""Attestation policy as data: what evidence a key's owner accepts.

A :class:`Policy` is a frozen value built with keywords or loaded from TOML, JSON or YAML
(:meth:`Policy.from_file`); every field is validated when the policy is made, so a typo fails at load
time, not at the first attestation. :func:`cchet.attest.appraise` applies it and lists every violated rule,
each naming its policy field and the evidence field it looked at.

Safe defaults: simulated evidence is refused (``allow_simulation=False``); debug TEEs are refused; the TCB
must be UpToDate; the report-data binding of DESIGN.md section 4 is required; nonces older than 60 s are
refused; every GPU's measurements must match NVIDIA's signed driver and VBIOS RIMs
(``gpu_measurements="match"``) and its CC mode must not be devtools; and a policy that pins no CPU
measurement for the evidence's TEE kind -- or, for SEV-SNP, sets no TCB floor (``snp_min_tcb``) -- refuses it,
unless it says ``measurements="any"`` -- which is logged as a warning when the policy is made and at every
appraisal it lets through -- or the evidence is simulated and simulation is allowed. Opting out of the GPU
rules (``gpu_measurements="unchecked"``, ``gpu_allow_devtools=True``) is explicit and every appraisal it lets
through carries a warning (the broker logs and audits it).

Reference values are lists of accepted lowercase hex strings (any one may match); an empty list pins
nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cchet.attest.tcb import STATUS_ORDER
from cchet.attest.tees import ALL, BUILTIN, EXTRA

__all__ = ["GPU_MEASUREMENT_MODES", "GPU_MODES", "TCB_STATUS_ORDER", "TEE_KINDS", "Policy"]

log = logging.getLogger("cchet.attest.policy")

TEE_KINDS = ALL  # every kind a policy may accept: the built-in ones and each TEE family's (cchet.attest.tees)
TABLES = {kind: kind.replace("-", "_") for kind in EXTRA}  # kind -> the field holding its rules
GPU_MODES = ("forbidden", "optional", "required")
GPU_MEASUREMENT_MODES = ("match", "unchecked")
TCB_STATUS_ORDER = tuple(s for s in STATUS_ORDER if s != "Revoked")  # what a policy may accept, best first
_HEX_FIELDS = {
    "mrtd": 48,
    "rtmr0": 48,
    "rtmr1": 48,
    "rtmr2": 48,
    "rtmr3": 48,
    "mrconfigid": 48,
    "mrenclave": 32,
    "mrsigner": 32,
    "snp_measurement": 48,
    "snp_host_data": 32,
}
_TABLE_FIELDS = frozenset(TABLES.values())
CPU_PINS = {
    "tdx": ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3"),
    "sgx": ("mrenclave", "mrsigner"),
    "snp": ("snp_measurement",),
}


def _hex_list(name: str, value: object, size: int) -> tuple[str, ...]:
    items = [value] if isinstance(value, str | bytes) else value
    if not isinstance(items, Sequence):
        raise ValueError(f"policy.{name}: expected a list of hex strings")
    out = []
    for item in items:
        text = item.hex() if isinstance(item, bytes) else item
        if not isinstance(text, str):
            raise ValueError(f"policy.{name}: expected hex strings, got {type(item).__name__}")
        text = text.lower().removeprefix("0x")
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise ValueError(f"policy.{name}: {text!r} is not hex") from None
        if len(raw) != size:
            raise ValueError(f"policy.{name}: {text!r} is {len(raw)} bytes, expected exactly {size}")
        out.append(text)
    return tuple(out)


def _str_list(name: str, value: object) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, Sequence) or not all(isinstance(i, str) for i in items):
        raise ValueError(f"policy.{name}: expected a list of strings")
    return tuple(items)


def version_tuple(text: str, *, name: str = "version") -> tuple[int, ...]:
    """``"550.90.07"`` -> (550, 90, 7); VBIOS versions are hex (``"96.00.9F.00.01"``). Raises ValueError."""
    base = 16 if name == "min_vbios_version" else 10
    try:
        return tuple(int(p, base) for p in text.split("."))
    except ValueError:
        raise ValueError(f"policy.{name}: {text!r} is not a dotted version") from None


@dataclass(frozen=True, kw_only=True)
class Policy:
    """What evidence is acceptable. Keyword-only; validated on construction (``ValueError`` naming the field).

    Fields, by rule:

    - ``tee_kinds``: CPU TEE kinds accepted (default tdx, snp, sgx; a TEE family's kind -- ``az-snp``,
      ``az-tdx``, ``csv``, ``cca`` -- only when named).
    - ``measurements``: ``"pinned"`` (default: the CPU kind must have reference values below) or ``"any"``.
    - TDX: ``mrtd``, ``rtmr0`` .. ``rtmr3``, ``mrconfigid`` -- accepted values.
    - SGX: ``mrenclave``, ``mrsigner``, ``isv_prod_id``, ``min_isv_svn``.
    - SNP: ``snp_measurement``, ``snp_host_data``, ``snp_allow_smt``, ``snp_allow_migration_agent``,
      ``snp_min_tcb`` (boot loader, TEE, SNP, microcode: the reported TCB must reach it; key release needs
      one, like pinned measurements), ``snp_vmpl``.
    - GPUs: ``gpu`` (forbidden, optional, required), ``gpu_measurements`` (``match``: every GPU's
      measurements equal NVIDIA's signed driver and VBIOS RIMs; ``unchecked``: a GPU whose RIMs were
      unavailable is accepted, with a warning), ``gpu_allow_devtools``, ``gpu_rim_ids``,
      ``min_driver_version``, ``min_vbios_version``.
    - Platform: ``allow_debug``, ``min_tcb_status``, ``accepted_advisories``.
    - Freshness and binding: ``require_binding``, ``max_nonce_age_s``.
    - ``allow_simulation``: accept evidence under a simulated root (results still say SIMULATED).
    - A TEE family's kind: its table ``az_snp``, ``az_tdx``, ``csv``, ``cca`` (``[csv]`` in a policy file),
      whose fields its family module defines and checks (:mod:`cchet.attest.tees`).
    """

    name: str = ""
    tee_kinds: tuple[str, ...] = BUILTIN
    measurements: str = "pinned"
    mrtd: tuple[str, ...] = ()
    rtmr0: tuple[str, ...] = ()
    rtmr1: tuple[str, ...] = ()
    rtmr2: tuple[str, ...] = ()
    rtmr3: tuple[str, ...] = ()
    mrconfigid: tuple[str, ...] = ()
    mrenclave: tuple[str, ...] = ()
    mrsigner: tuple[str, ...] = ()
    isv_prod_id: int | None = None
    min_isv_svn: int | None = None
    snp_measurement: tuple[str, ...] = ()
    snp_host_data: tuple[str, ...] = ()
    snp_allow_smt: bool = True
    snp_allow_migration_agent: bool = False
    snp_min_tcb: tuple[int, int, int, int] | None = None
    snp_vmpl: int = 0
    gpu: str = "optional"
    gpu_measurements: str = "match"
    gpu_allow_devtools: bool = False
    gpu_rim_ids: tuple[str, ...] = ()
    min_driver_version: str | None = None
    min_vbios_version: str | None = None
    allow_debug: bool = False
    min_tcb_status: str = "UpToDate"
    accepted_advisories: tuple[str, ...] = ()
    require_binding: bool = True
    max_nonce_age_s: float = 60.0
    allow_simulation: bool = False
    az_snp: Mapping[str, Any] = field(default_factory=dict)
    az_tdx: Mapping[str, Any] = field(default_factory=dict)
    csv: Mapping[str, Any] = field(default_factory=dict)
    cca: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.name, str):
            raise ValueError("policy.name: expected a string")
        kinds = _str_list("tee_kinds", self.tee_kinds)
        bad = [k for k in kinds if k not in TEE_KINDS]
        if bad or not kinds:
            raise ValueError(f"policy.tee_kinds: {bad or 'empty'}; expected some of {', '.join(TEE_KINDS)}")
        set_(self, "tee_kinds", kinds)
        if self.measurements not in ("pinned", "any"):
            raise ValueError("policy.measurements: expected 'pinned' or 'any'")
        for name, size in _HEX_FIELDS.items():
            set_(self, name, _hex_list(name, getattr(self, name), size))
        if isinstance(self.snp_vmpl, bool) or self.snp_vmpl not in (0, 1, 2, 3):
            raise ValueError("policy.snp_vmpl: expected 0..3")
        for name in ("isv_prod_id", "min_isv_svn"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 0xFFFF):
                raise ValueError(f"policy.{name}: expected an integer 0..65535 or nothing")
        for name in (
            "snp_allow_smt",
            "snp_allow_migration_agent",
            "allow_debug",
            "require_binding",
            "allow_simulation",
            "gpu_allow_devtools",
        ):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"policy.{name}: expected true or false")
        if self.snp_min_tcb is not None:
            tcb = tuple(self.snp_min_tcb)
            if len(tcb) != 4 or not all(isinstance(v, int) and 0 <= v <= 255 for v in tcb):
                raise ValueError("policy.snp_min_tcb: expected [bootloader, tee, snp, microcode], each 0..255")
            set_(self, "snp_min_tcb", tcb)
        if self.gpu not in GPU_MODES:
            raise ValueError(f"policy.gpu: expected one of {', '.join(GPU_MODES)}")
        if self.gpu_measurements not in GPU_MEASUREMENT_MODES:
            raise ValueError(f"policy.gpu_measurements: expected one of {', '.join(GPU_MEASUREMENT_MODES)}")
        set_(self, "gpu_rim_ids", _str_list("gpu_rim_ids", self.gpu_rim_ids))
        for name in ("min_driver_version", "min_vbios_version"):
            v = getattr(self, name)
            if v is not None:
                if not isinstance(v, str):
                    raise ValueError(f"policy.{name}: expected a dotted version string")
                version_tuple(v, name=name)
        if self.min_tcb_status not in TCB_STATUS_ORDER:
            raise ValueError(f"policy.min_tcb_status: expected one of {', '.join(TCB_STATUS_ORDER)}")
        set_(self, "accepted_advisories", _str_list("accepted_advisories", self.accepted_advisories))
        if (
            isinstance(self.max_nonce_age_s, bool)
            or not isinstance(self.max_nonce_age_s, int | float)
            or not (0 < self.max_nonce_age_s <= 3600)
        ):
            raise ValueError("policy.max_nonce_age_s: expected seconds in (0, 3600]")
        for kind, name in TABLES.items():
            table = getattr(self, name)
            if not isinstance(table, Mapping):
                raise ValueError(f"policy.{name}: expected a table of {kind} rules")
            if table:
                from cchet.attest.tees import tee

                set_(self, name, tee(kind).check_section(table))
            else:
                set_(self, name, {})
        if self.measurements == "any":
            log.warning(
                "policy %s uses measurements='any': keys may be released to ANY code in an attested TEE, "
                "with no CPU measurement pinned",
                self.policy_id,
            )

    # -- identity -----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The policy as plain data (lists, not tuples), fields in declaration order; a TEE family's table
        only when it holds rules (so policies written before the tables existed keep their ids)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in _TABLE_FIELDS and not v:
                continue
            out[f.name] = (
                list(v) if isinstance(v, tuple) else json.loads(json.dumps(v)) if f.name in _TABLE_FIELDS else v
            )
        return out

    def table(self, kind: str) -> Mapping[str, Any]:
        """The rules table of a TEE family's ``kind`` (empty when the policy sets none)."""
        value: Mapping[str, Any] = getattr(self, TABLES[kind])
        return value

    @property
    def digest(self) -> str:
        """SHA-256 (hex) of the canonical JSON of :meth:`to_dict`."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def policy_id(self) -> str:
        """``name:digest16`` (or ``digest16`` when unnamed): what the audit log records."""
        return f"{self.name}:{self.digest[:16]}" if self.name else self.digest[:16]

    def pins_cpu(self, kind: str) -> bool:
        """True when at least one reference value is pinned for CPU TEE ``kind``."""
        if kind in TABLES:
            from cchet.attest.tees import tee

            return bool(self.table(kind)) and tee(kind).pins(self.table(kind))
        return any(getattr(self, f) for f in CPU_PINS.get(kind, ()))

    # -- loading and saving -------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Policy:
        """Builds a policy from plain data; unknown keys raise ``ValueError`` listing the valid ones. A
        top-level ``policy`` table, if that is all there is, is unwrapped."""
        if set(data) == {"policy"} and isinstance(data["policy"], Mapping):
            data = data["policy"]
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ValueError(f"unknown policy field(s) {', '.join(unknown)}; valid fields: {', '.join(valid)}")
        return cls(**dict(data))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Policy:
        """Loads ``.toml``, ``.json``, ``.yaml`` or ``.yml``. Raises ``ValueError`` for an unknown suffix,
        malformed content or an invalid field, ``OSError`` when the file cannot be read."""
        p = Path(path)
        text = p.read_text(encoding="utf-8")
        suffix = p.suffix.lower()
        data: Any
        if suffix == ".toml":
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as e:
                raise ValueError(f"{p}: {e}") from None
        elif suffix == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                raise ValueError(f"{p}: {e}") from None
        elif suffix in (".yaml", ".yml"):
            import yaml  # only YAML policies pay for importing it

            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as e:
                raise ValueError(f"{p}: {e}") from None
        else:
            raise ValueError(f"{p}: policy files are .toml, .json, .yaml or .yml")
        if not isinstance(data, Mapping):
            raise ValueError(f"{p}: a policy file holds one table of fields")
        return cls.from_dict(data)

    def to_toml(self) -> str:
        """TOML text that :meth:`from_file` reads back to an equal policy (``None`` fields are left out; a TEE
        family's rules as a table of their own)."""
        lines = [f"# cchet attestation policy {self.policy_id}"]
        tables = []
        for key, value in self.to_dict().items():
            if value is None:
                continue
            if key in _TABLE_FIELDS:
                tables += ["", f"[{key}]", *(f"{k} = {_toml_value(v)}" for k, v in value.items())]
            else:
                lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines + tables) + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        if not value:
            return "[]"
        inner = ",\n".join(f"    {_toml_value(v)}" for v in value)
        return f"[\n{inner},\n]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
