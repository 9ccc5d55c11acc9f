"""CCA platform endorsements as trust anchors: the CPAK (CCA platform attestation key) public key of each
platform, named by the platform it belongs to.

Vendor ``arm-cca`` is a raw-root vendor (:data:`cchet.attest.verify.options.RAW_ROOT_VENDORS`): an anchor's
``certificate_der`` holds the CPAK's SubjectPublicKeyInfo DER and its ``name`` says which platform:
``Arm CCA CPAK implementation-id=<64 hex> instance-id=<66 hex>`` (``any`` for a key endorsed without naming
one; such a key vouches for whatever platform it signs). Verification looks the CPAK up by the platform
token's instance-id (and implementation-id when the anchor names one), as Veraison's ccatoken does.

Endorsements come from the platform's owner or vendor, never from the evidence: :func:`anchors_from_tastore`
reads the ccatoken / trustee trust-anchor store (``tastore.json``: a list of ``{pkey: JWK, implementation-id,
instance-id}``), :func:`anchors_from_collateral` that, a lone EC JWK or a PEM public key
(``cchet verify --collateral``). Each raises ``ValueError`` naming the entry and field that is wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cchet.attest.tees.cca.cose import jwk_public_key, spki_der
from cchet.attest.tees.cca.token import IMPLEMENTATION_ID_SIZE, INSTANCE_ID_SIZE, PlatformClaims
from cchet.attest.verify.options import TrustAnchor

__all__ = [
    "VENDOR",
    "anchor_platform",
    "anchor_public_key",
    "anchors_for_platform",
    "anchors_from_collateral",
    "anchors_from_tastore",
    "cpak_anchor",
]

VENDOR = "arm-cca"
_NAME = re.compile(
    r"^Arm CCA CPAK(?: SIMULATED by cchet)? implementation-id=(any|[0-9a-f]{64}) instance-id=(any|[0-9a-f]{66})$"
)


def cpak_anchor(
    key: ec.EllipticCurvePublicKey,
    *,
    implementation_id: bytes | None,
    instance_id: bytes | None,
    simulated: bool = False,
) -> TrustAnchor:
    """The trust anchor holding ``key`` as the CPAK of the platform named (None: any platform). Raises
    ``ValueError`` for identifiers of the wrong size."""
    if implementation_id is not None and len(implementation_id) != IMPLEMENTATION_ID_SIZE:
        raise ValueError(f"implementation-id must be {IMPLEMENTATION_ID_SIZE} bytes")
    if instance_id is not None and len(instance_id) != INSTANCE_ID_SIZE:
        raise ValueError(f"instance-id must be {INSTANCE_ID_SIZE} bytes")
    impl = implementation_id.hex() if implementation_id is not None else "any"
    inst = instance_id.hex() if instance_id is not None else "any"
    mark = " SIMULATED by cchet" if simulated else ""
    return TrustAnchor(
        VENDOR,
        spki_der(key),
        simulated=simulated,
        name=f"Arm CCA CPAK{mark} implementation-id={impl} instance-id={inst}",
    )


def anchor_platform(anchor: TrustAnchor) -> tuple[bytes | None, bytes | None]:
    """(implementation-id, instance-id) the anchor endorses, None for "any"; ``ValueError`` when its name is
    not one :func:`cpak_anchor` writes."""
    match = _NAME.match(anchor.name)
    if match is None:
        raise ValueError(f"{anchor.name!r} is not an Arm CCA CPAK anchor name")
    impl, inst = match.groups()
    return (None if impl == "any" else bytes.fromhex(impl)), (None if inst == "any" else bytes.fromhex(inst))


def anchor_public_key(anchor: TrustAnchor) -> ec.EllipticCurvePublicKey:
    """The CPAK an anchor holds; ``ValueError`` when it is not an EC public key."""
    key = serialization.load_der_public_key(anchor.certificate_der)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("the anchor does not hold an EC public key")
    return key


def anchors_for_platform(anchors: Iterable[TrustAnchor], claims: PlatformClaims) -> list[TrustAnchor]:
    """The anchors that endorse the platform of ``claims``: by instance-id, and implementation-id where the
    anchor names one (anchors with malformed names are skipped)."""
    out = []
    for anchor in anchors:
        if anchor.vendor != VENDOR:
            continue
        try:
            impl, inst = anchor_platform(anchor)
        except ValueError:
            continue
        if inst not in (None, claims.instance_id) or impl not in (None, claims.implementation_id):
            continue
        out.append(anchor)
    return out


def _hex(value: Any, size: int, where: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected {size} bytes as hex text")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"{where}: not hex") from None
    if len(raw) != size:
        raise ValueError(f"{where}: {len(raw)} bytes, expected {size}")
    return raw


def anchors_from_tastore(data: bytes | str | Sequence[Any]) -> tuple[TrustAnchor, ...]:
    """Every CPAK of a ccatoken trust-anchor store (``tastore.json``: JSON text, or its decoded list) as a
    (real) trust anchor; ``ValueError`` naming ``tastore[i].<field>`` for a malformed entry."""
    doc = json.loads(data) if isinstance(data, bytes | str) else data
    if not isinstance(doc, list):
        raise ValueError("tastore: expected a list of {pkey, implementation-id, instance-id}")
    out = []
    for i, entry in enumerate(doc):
        where = f"tastore[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected an object")
        unknown = sorted(set(entry) - {"pkey", "implementation-id", "instance-id"})
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}")
        try:
            key = jwk_public_key(entry.get("pkey"))
        except ValueError as e:
            raise ValueError(f"{where}.pkey: {e}") from None
        out.append(
            cpak_anchor(
                key,
                implementation_id=_hex(
                    entry.get("implementation-id"), IMPLEMENTATION_ID_SIZE, f"{where}.implementation-id"
                ),
                instance_id=_hex(entry.get("instance-id"), INSTANCE_ID_SIZE, f"{where}.instance-id"),
            )
        )
    return tuple(out)


def anchors_from_collateral(data: bytes) -> tuple[TrustAnchor, ...]:
    """Arm CCA anchors in a file given as collateral: a tastore (JSON list), a lone EC JWK (JSON object with
    ``kty``; it endorses any platform, as ``evcli cca check -k`` does) or a PEM ``PUBLIC KEY``; ``()`` when
    ``data`` is none of these (another vendor's collateral). ``ValueError`` when it is one of them but
    malformed."""
    text = data.lstrip()
    if text.startswith(b"-----BEGIN PUBLIC KEY-----"):
        key = serialization.load_pem_public_key(data)
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError("the PEM public key is not an EC key")
        return (cpak_anchor(key, implementation_id=None, instance_id=None),)
    if not text.startswith((b"[", b"{")):
        return ()
    try:
        doc = json.loads(data)
    except ValueError:
        return ()
    if isinstance(doc, dict) and "kty" in doc:
        return (cpak_anchor(jwk_public_key(doc), implementation_id=None, instance_id=None),)
    if isinstance(doc, list) and doc and all(isinstance(e, dict) and "pkey" in e for e in doc):
        return anchors_from_tastore(doc)
    return ()
