"""The ``cca`` policy table: reference values for a realm and its platform (``Policy(cca={...})``, ``[cca]`` in
a policy file).

Fields (each a list of accepted values, any one of which may match; an empty or absent field pins nothing):

- ``rim``: realm initial measurement (realm claim 44238), hex.
- ``rems``: the four realm extensible measurements (claim 44239), each entry a list of four hex values that
  must all match, in order.
- ``rpv``: realm personalization value (claim 44235), 64 bytes hex.
- ``implementation_id``: the platform implementation (platform claim 2396), 32 bytes hex.
- ``platform_config``: platform configuration (claim 2401), hex.
- ``sw_components``: the platform's measured software (claim 2399), each entry a whole list of components
  that must equal the token's element by element (same length, same order): ``{measurement, signer_id}``,
  plus ``type`` and ``version`` compared only where given -- Veraison's ccatoken rule. A single list of
  component tables is accepted as one entry.

``measurements = "pinned"`` needs ``rim``. Hex is normalised to lowercase; sizes are checked (measurements 32,
48 or 64 bytes). Errors are ``ValueError`` naming ``policy.cca.<field>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cchet.attest.tees import Fail

__all__ = ["FIELDS", "check_section", "evaluate", "pins", "reference"]

FIELDS = ("rim", "rems", "rpv", "implementation_id", "platform_config", "sw_components")
COMPONENT_FIELDS = ("measurement", "signer_id", "type", "version")
_MEASUREMENT_SIZES = (32, 48, 64)


def _hex(value: Any, where: str, sizes: Sequence[int] | None) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected hex text, got {type(value).__name__}")
    text = value.strip().lower()
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{where}: {value!r} is not hex") from None
    if sizes is not None and len(raw) not in sizes:
        want = " or ".join(map(str, sizes))
        raise ValueError(f"{where}: {len(raw)} bytes, expected {want}")
    return raw.hex()


def _list(value: Any, where: str) -> list[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ValueError(f"{where}: expected a list")
    return list(value)


def _component(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a table {{measurement, signer_id[, type, version]}}")
    unknown = sorted(set(value) - set(COMPONENT_FIELDS))
    if unknown:
        raise ValueError(
            f"{where}: unknown field(s) {', '.join(map(str, unknown))}; valid: {', '.join(COMPONENT_FIELDS)}"
        )
    out = {}
    for key in ("measurement", "signer_id"):
        if key not in value:
            raise ValueError(f"{where}.{key}: missing")
        out[key] = _hex(value[key], f"{where}.{key}", _MEASUREMENT_SIZES)
    for key in ("type", "version"):
        if key in value:
            if not isinstance(value[key], str):
                raise ValueError(f"{where}.{key}: expected text")
            out[key] = value[key]
    return out


def check_section(section: Mapping[str, Any]) -> dict[str, Any]:
    """The table validated and normalised (empty fields left out); ``ValueError`` naming ``policy.cca.<field>``."""
    unknown = sorted(set(section) - set(FIELDS))
    if unknown:
        raise ValueError(
            f"policy.cca: unknown field(s) {', '.join(map(str, unknown))}; valid fields: {', '.join(FIELDS)}"
        )
    out: dict[str, Any] = {}
    sizes: dict[str, Sequence[int] | None] = {
        "rim": _MEASUREMENT_SIZES,
        "rpv": (64,),
        "implementation_id": (32,),
        "platform_config": None,
    }
    for field, size in sizes.items():
        values = [
            _hex(v, f"policy.cca.{field}[{i}]", size)
            for i, v in enumerate(_list(section.get(field, []), f"policy.cca.{field}"))
        ]
        if values:
            out[field] = list(dict.fromkeys(values))
    rems = []
    for i, entry in enumerate(_list(section.get("rems", []), "policy.cca.rems")):
        where = f"policy.cca.rems[{i}]"
        items = _list(entry, where)
        if len(items) != 4:
            raise ValueError(f"{where}: expected the four extensible measurements, got {len(items)}")
        rems.append([_hex(v, f"{where}[{j}]", _MEASUREMENT_SIZES) for j, v in enumerate(items)])
    if rems:
        out["rems"] = [r for k, r in enumerate(rems) if r not in rems[:k]]
    entries = _list(section.get("sw_components", []), "policy.cca.sw_components")
    if entries and all(isinstance(e, Mapping) for e in entries):
        entries = [entries]  # one list of components given flat
    lists = []
    for i, entry in enumerate(entries):
        where = f"policy.cca.sw_components[{i}]"
        lists.append([_component(c, f"{where}[{j}]") for j, c in enumerate(_list(entry, where))])
    if lists:
        out["sw_components"] = [c for k, c in enumerate(lists) if c not in lists[:k]]
    return {f: out[f] for f in FIELDS if f in out}


def pins(section: Mapping[str, Any]) -> bool:
    """Whether the table pins the realm initial measurement (what ``measurements = "pinned"`` requires)."""
    return bool(section.get("rim"))


def _component_of(c: Any) -> dict[str, str]:
    out = {"measurement": c.measurement.hex(), "signer_id": c.signer_id.hex()}
    if c.component_type is not None:
        out["type"] = c.component_type
    if c.version is not None:
        out["version"] = c.version
    return out


def _list_mismatch(actual: Sequence[dict[str, str]], want: Sequence[Mapping[str, str]]) -> str | None:
    """Why the token's components do not match one reference list (None when they do)."""
    if len(actual) != len(want):
        return f"{len(actual)} components, the reference has {len(want)}"
    for i, (got, ref) in enumerate(zip(actual, want, strict=True)):
        for key in COMPONENT_FIELDS:
            if key in ref and got.get(key) != ref[key]:
                name = got.get("type") or f"#{i}"
                return f"component {i} ({name}) {key} is {got.get(key)}, the reference has {ref[key]}"
    return None


def evaluate(report: Any, section: Mapping[str, Any], fail: Fail) -> None:
    """Apply the table to a verified token (a :class:`~cchet.attest.tees.cca.token.CcaToken`), calling ``fail``
    once per violated field."""
    realm, platform = report.realm_claims, report.platform_claims
    singles = (
        ("rim", "realm.initial_measurement", realm.initial_measurement),
        ("rpv", "realm.personalization_value", realm.personalization_value),
        ("implementation_id", "platform.implementation_id", platform.implementation_id),
        ("platform_config", "platform.config", platform.config),
    )
    for field, evidence_field, value in singles:
        allowed = section.get(field)
        if allowed and value.hex() not in allowed:
            fail(f"cca.{field}", evidence_field, "one of " + ", ".join(allowed), value.hex())
    rems = [m.hex() for m in realm.extensible_measurements]
    if section.get("rems") and rems not in section["rems"]:
        expected = " or ".join("[" + ", ".join(r) + "]" for r in section["rems"])
        fail("cca.rems", "realm.extensible_measurements", expected, "[" + ", ".join(rems) + "]")
    lists = section.get("sw_components")
    if lists:
        actual = [_component_of(c) for c in platform.sw_components]
        why = [_list_mismatch(actual, want) for want in lists]
        if all(w is not None for w in why):
            expected = (
                "the reference software components" if len(lists) == 1 else f"one of {len(lists)} reference lists"
            )
            shown = why[0] if len(why) == 1 else "; ".join(f"list {i}: {w}" for i, w in enumerate(why))
            fail("cca.sw_components", "platform.sw_components", expected, shown)


def reference(report: Any) -> dict[str, Any]:
    """The table pinning this token: its RIM, REMs, RPV, implementation-id, platform config and components."""
    realm, platform = report.realm_claims, report.platform_claims
    return {
        "rim": [realm.initial_measurement.hex()],
        "rems": [[m.hex() for m in realm.extensible_measurements]],
        "rpv": [realm.personalization_value.hex()],
        "implementation_id": [platform.implementation_id.hex()],
        "platform_config": [platform.config.hex()],
        "sw_components": [[_component_of(c) for c in platform.sw_components]],
    }
