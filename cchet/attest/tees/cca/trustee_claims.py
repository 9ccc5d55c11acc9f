"""Trustee's CCA claims document (its verifier's output for a CCA token), written and read.

Trustee emits, for a verified token, ``{"platform": {...}, "realm": {...}, "report_data": hex, "init_data":
hex}`` with kebab-case ``cca-platform-*`` / ``cca-realm-*`` keys whose byte values are standard base64, and
``report_data``/``init_data`` as hex of the realm challenge and personalization value. :func:`trustee_claims`
writes that document for a token; :func:`read_trustee_claims` reads one the way trustee's claims type does
(the fields it has are required and typed, any other key is ignored). For interoperability with trustee's
attestation-service policies; cchet's own claims are :func:`cchet.attest.tees.cca.claims.token_claims`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cchet.attest.tees.cca.token import CcaToken

__all__ = ["TrusteeClaims", "read_trustee_claims", "trustee_claims"]


@dataclass(frozen=True)
class TrusteeClaims:
    """What trustee's claims type holds (byte values decoded)."""

    instance_id: bytes
    implementation_id: bytes
    personalization_value: bytes
    initial_measurement: bytes
    extensible_measurements: tuple[bytes, ...]
    hash_algo: str
    challenge: bytes
    report_data: str
    init_data: str


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def trustee_claims(token: CcaToken) -> dict[str, Any]:
    """Trustee's claims document for ``token`` (which should have verified first)."""
    realm, platform = token.realm_claims, token.platform_claims
    return {
        "platform": {
            "cca-platform-instance-id": _b64(platform.instance_id),
            "cca-platform-implementation-id": _b64(platform.implementation_id),
        },
        "realm": {
            "cca-realm-personalization-value": _b64(realm.personalization_value),
            "cca-realm-initial-measurement": _b64(realm.initial_measurement),
            "cca-realm-extensible-measurements": [_b64(m) for m in realm.extensible_measurements],
            "cca-realm-hash-algo-id": realm.hash_algo,
            "cca-realm-challenge": _b64(realm.challenge),
        },
        "report_data": realm.challenge.hex(),
        "init_data": realm.personalization_value.hex(),
    }


def _field(doc: Any, key: str, where: str, typ: type) -> Any:
    if not isinstance(doc, Mapping) or not isinstance(doc.get(key), typ):
        raise ValueError(f"{where}.{key}: missing or not {typ.__name__}")
    return doc[key]


def _decode(text: Any, where: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"{where}: missing or not str")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{where}: not standard base64") from None


def _bytes(doc: Mapping[str, Any], key: str, where: str) -> bytes:
    return _decode(doc.get(key), f"{where}.{key}")


def read_trustee_claims(data: bytes | str) -> TrusteeClaims:
    """Reads a trustee claims document; ``ValueError`` naming the field that is missing or malformed."""
    doc = json.loads(data)
    platform = _field(doc, "platform", "claims", dict)
    realm = _field(doc, "realm", "claims", dict)
    key = "cca-realm-extensible-measurements"
    rems = [_decode(m, f"claims.realm.{key}[{i}]") for i, m in enumerate(_field(realm, key, "claims.realm", list))]
    for name in ("report_data", "init_data"):
        try:
            bytes.fromhex(_field(doc, name, "claims", str))
        except ValueError:
            raise ValueError(f"claims.{name}: not hex") from None
    return TrusteeClaims(
        instance_id=_bytes(platform, "cca-platform-instance-id", "claims.platform"),
        implementation_id=_bytes(platform, "cca-platform-implementation-id", "claims.platform"),
        personalization_value=_bytes(realm, "cca-realm-personalization-value", "claims.realm"),
        initial_measurement=_bytes(realm, "cca-realm-initial-measurement", "claims.realm"),
        extensible_measurements=tuple(rems),
        hash_algo=_field(realm, "cca-realm-hash-algo-id", "claims.realm", str),
        challenge=_bytes(realm, "cca-realm-challenge", "claims.realm"),
        report_data=doc["report_data"],
        init_data=doc["init_data"],
    )
