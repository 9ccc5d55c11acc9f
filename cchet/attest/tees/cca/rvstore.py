"""Reference values from a ccatoken / trustee reference-value store (``rvstore.json``) as a ``cca`` policy table.

The store lists platform entries (``implementation-id``, ``platform-configuration``, ``sw-components`` of
``{measurement-value, signer-id[, component-type, version]}``) and realm entries (``initial-measurement``,
``extensible-measurements``, ``personalization-value``, ``rak-hash-algorithm``). They map onto the table
(:mod:`cchet.attest.tees.cca.table`) field by field: ``implementation_id``, ``platform_config``,
``sw_components`` (one list per platform entry), ``rim``, ``rems`` (one list of four per realm entry) and
``rpv``. ``rak-hash-algorithm`` has no field: verification checks the RAK binding with whatever algorithm the
token names.

Differences from ccatoken's appraisal, all stricter or stated here: the table's fields are independent (a
store with several platform or realm entries gives a table accepting any combination of their values; write
one policy per entry to keep them paired); the personalization value is compared, where ccatoken ignores it;
and a store whose realm entries mix some with and some without extensible measurements is refused (ccatoken
checks REMs per entry; a table cannot), as is a store with no realm entry (nothing to pin ``rim`` with).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cchet.attest.tees.cca.table import check_section

__all__ = ["table_from_rvstore"]


def _get(entry: Any, key: str, where: str, typ: type) -> Any:
    if not isinstance(entry, Mapping) or key not in entry:
        raise ValueError(f"{where}: missing {key!r}")
    if not isinstance(entry[key], typ):
        raise ValueError(f"{where}.{key}: expected {typ.__name__}")
    return entry[key]


def table_from_rvstore(data: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    """The ``cca`` policy table holding a reference-value store's values (JSON text or its decoded object);
    ``ValueError`` naming ``rvstore.<path>`` (or ``policy.cca.<field>`` for a bad value)."""
    doc = json.loads(data) if isinstance(data, bytes | str) else data
    if not isinstance(doc, Mapping):
        raise ValueError("rvstore: expected an object with 'platform' and 'realm' lists")
    table: dict[str, list[Any]] = {f: [] for f in ("rim", "rems", "rpv", "implementation_id", "platform_config")}
    table["sw_components"] = []
    for i, entry in enumerate(_get(doc, "platform", "rvstore", list)):
        where = f"rvstore.platform[{i}]"
        table["implementation_id"].append(_get(entry, "implementation-id", where, str))
        table["platform_config"].append(_get(entry, "platform-configuration", where, str))
        components = []
        for j, c in enumerate(_get(entry, "sw-components", where, list)):
            at = f"{where}.sw-components[{j}]"
            component = {
                "measurement": _get(c, "measurement-value", at, str),
                "signer_id": _get(c, "signer-id", at, str),
            }
            if "component-type" in c:
                component["type"] = _get(c, "component-type", at, str)
            if "version" in c:
                component["version"] = _get(c, "version", at, str)
            components.append(component)
        table["sw_components"].append(components)
    realms = _get(doc, "realm", "rvstore", list)
    if not realms:
        raise ValueError("rvstore.realm: no realm entry, so no realm initial measurement to pin")
    with_rems = [isinstance(e, Mapping) and "extensible-measurements" in e for e in realms]
    if any(with_rems) and not all(with_rems):
        raise ValueError(
            "rvstore.realm: some entries list extensible-measurements and some do not; a cca table checks them "
            "for every realm or for none (write one policy per entry)"
        )
    for i, entry in enumerate(realms):
        where = f"rvstore.realm[{i}]"
        table["rim"].append(_get(entry, "initial-measurement", where, str))
        if "extensible-measurements" in entry:
            table["rems"].append(_get(entry, "extensible-measurements", where, list))
        if "personalization-value" in entry:
            table["rpv"].append(_get(entry, "personalization-value", where, str))
    return check_section(table)
