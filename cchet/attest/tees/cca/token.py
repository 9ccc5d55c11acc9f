"""Arm CCA attestation tokens: bytes in, frozen dataclasses out, and back.

The token (Arm RMM specification DEN0137, chapter A7, "Realm attestation") is a CBOR tag-399 collection, a
map holding the CCA platform token under key 44234 and the realm delegated token under key 44241, each a
byte string holding a tagged COSE_Sign1 (tag 18): ``[protected header bstr, unprotected header map,
payload bstr, signature bstr]``. The payloads are claim maps with integer keys (the ``*_CLAIM`` constants below).

Parsing decodes with cbor2 and checks structure, claim types and sizes only; it verifies no signature
(:mod:`cchet.attest.tees.cca.verify` does). Exactness: every part is accepted only in the encoding its
decoded value re-encodes to (CBOR preferred serialization with definite lengths, map keys in the order
given and never repeated -- what RMM and the platform's security processor emit), so
``parse_token(data).to_bytes() == data`` for every token that parses, and no two encodings (a repeated claim
with two values, say) can stand for one token. Raises :class:`~cchet.errors.EvidenceFormatError` naming the
field (``realm.claims[44238]``; the message names the claim) and, where it can, the offset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cbor2

from cchet.errors import EvidenceFormatError

__all__ = [
    "COLLECTION_TAG",
    "COSE_SIGN1_TAG",
    "HASH_SIZES",
    "PLATFORM_TOKEN",
    "REALM_PROFILE",
    "REALM_TOKEN",
    "CcaToken",
    "CoseSign1",
    "PlatformClaims",
    "RealmClaims",
    "SwComponent",
    "decode_cbor",
    "parse_token",
]

COLLECTION_TAG = 399
COSE_SIGN1_TAG = 18
PLATFORM_TOKEN = 44234
REALM_TOKEN = 44241

# claim keys shared by both tokens
PROFILE_CLAIM = 265
CHALLENGE_CLAIM = 10
# CCA platform token claims
PLATFORM_INSTANCE_ID_CLAIM = 256
PLATFORM_LIFECYCLE_CLAIM = 2395
PLATFORM_IMPLEMENTATION_ID_CLAIM = 2396
PLATFORM_SW_COMPONENTS_CLAIM = 2399
PLATFORM_VERIFICATION_SERVICE_CLAIM = 2400
PLATFORM_CONFIG_CLAIM = 2401
PLATFORM_HASH_ALGO_CLAIM = 2402
# software component keys
SW_TYPE, SW_MEASUREMENT, SW_VERSION, SW_SIGNER_ID, SW_HASH_ALGO = 1, 2, 4, 5, 6
# realm token claims
REALM_PERSONALIZATION_CLAIM = 44235
REALM_HASH_ALGO_CLAIM = 44236
REALM_PUBLIC_KEY_CLAIM = 44237
REALM_INITIAL_MEASUREMENT_CLAIM = 44238
REALM_EXTENSIBLE_MEASUREMENTS_CLAIM = 44239
REALM_PUBLIC_KEY_HASH_ALGO_CLAIM = 44240

REALM_PROFILE = "tag:arm.com,2023:realm#1.0.0"
"""With this realm profile the RAK claim is a COSE_Key; without it, a raw uncompressed P-384 point."""
PLATFORM_PROFILES = ("tag:arm.com,2023:cca_platform#1.0.0", "http://arm.com/CCA-SSD/1.0.0")
HASH_SIZES = {"sha-256": 32, "sha-384": 48, "sha-512": 64}
"""Hash algorithm names of the token (IANA Named Information Hash Algorithm Registry) and their sizes."""
REALM_CHALLENGE_SIZE = 64
REALM_RPV_SIZE = 64
IMPLEMENTATION_ID_SIZE = 32
INSTANCE_ID_SIZE = 33
INSTANCE_ID_TYPE = 0x01  # EAT UEID type RAND
REM_COUNT = 4
RAW_RAK_SIZE = 97  # 0x04 || x || y on P-384
MAX_TOKEN_BYTES = 64 * 1024  # RMM hands a realm at most a few KiB; refuse anything far larger unread


def decode_cbor(data: bytes, field: str, *, offset: int | None = None) -> Any:
    """One CBOR data item decoded by cbor2; :class:`EvidenceFormatError` for anything cbor2 refuses (cbor2 is a
    decoder of untrusted input here: every exception it raises means "not this format")."""
    try:
        return cbor2.loads(data)
    except Exception as e:  # cbor2 raises several types for malformed input
        raise EvidenceFormatError(f"not CBOR: {e}", offset=offset, field=field) from None


def _same(again: bytes, data: bytes, field: str, offset: int | None) -> None:
    """Refuse ``data`` unless it equals ``again``, its re-encoding, naming the first byte that differs."""
    if again != data:
        at = next((i for i, (a, b) in enumerate(zip(again, data, strict=False)) if a != b), min(len(again), len(data)))
        raise EvidenceFormatError(
            "not in preferred CBOR encoding (indefinite length, a longer head than needed, or a repeated map key)",
            offset=(offset or 0) + at,
            field=field,
        )


def _exact(value: Any, data: bytes, field: str, offset: int | None) -> None:
    """Refuse ``data`` unless it is the preferred encoding of its decoded ``value`` (see the module docstring)."""
    try:
        again = cbor2.dumps(value)
    except Exception as e:  # a decoded value cbor2 cannot write back (a naive datetime...)
        raise EvidenceFormatError(f"cannot be re-encoded: {e}", offset=offset, field=field) from None
    _same(again, data, field, offset)


@dataclass(frozen=True)
class CoseSign1:
    """One COSE_Sign1 message (RFC 9052 section 4.2): the protected header as its serialized bytes, the
    unprotected header map as its CBOR encoding (not signed, not trusted), the payload bytes and the raw
    ``r || s`` signature. ``algorithm`` is the protected header's ``alg`` (label 1)."""

    protected: bytes
    unprotected: bytes
    payload: bytes
    signature: bytes
    algorithm: int

    def to_bytes(self) -> bytes:
        """The tagged COSE_Sign1 encoding."""
        return (
            b"\xd2\x84"  # tag 18, array of 4
            + cbor2.dumps(self.protected)
            + self.unprotected
            + cbor2.dumps(self.payload)
            + cbor2.dumps(self.signature)
        )

    def sig_structure(self) -> bytes:
        """What the signature covers (RFC 9052 section 4.4): ``["Signature1", protected, h'', payload]``."""
        return cbor2.dumps(["Signature1", self.protected, b"", self.payload])


@dataclass(frozen=True)
class SwComponent:
    """One measured platform software component (claim 2399 entry)."""

    measurement: bytes
    signer_id: bytes
    component_type: str | None = None
    version: str | None = None
    hash_algo: str | None = None


@dataclass(frozen=True)
class PlatformClaims:
    """The CCA platform token's claims. ``challenge`` is the hash of the realm's RAK (the binding);
    ``lifecycle`` the security lifecycle state (``0x3000``-``0x30ff`` is secured)."""

    profile: str
    challenge: bytes
    implementation_id: bytes
    instance_id: bytes
    config: bytes
    lifecycle: int
    sw_components: tuple[SwComponent, ...]
    hash_algo: str
    verification_service: str | None = None


@dataclass(frozen=True)
class RealmClaims:
    """The realm token's claims. ``challenge`` carries cchet's 64-byte report data; ``public_key`` is the RAK
    claim exactly as signed (a raw P-384 point, or a COSE_Key under :data:`REALM_PROFILE`)."""

    challenge: bytes
    personalization_value: bytes
    initial_measurement: bytes
    extensible_measurements: tuple[bytes, bytes, bytes, bytes]
    hash_algo: str
    public_key: bytes
    public_key_hash_algo: str
    profile: str | None = None


@dataclass(frozen=True)
class CcaToken:
    """A parsed CCA attestation token. ``platform``/``realm`` are the COSE_Sign1 messages exactly as received,
    ``platform_claims``/``realm_claims`` what their payloads say; ``platform_first`` keeps the collection's key
    order. Build one with :func:`parse_token` (or the simulator), which keeps claims and payloads in step."""

    platform: CoseSign1
    realm: CoseSign1
    platform_claims: PlatformClaims
    realm_claims: RealmClaims
    platform_first: bool = True

    kind = "cca"

    @property
    def report_data(self) -> bytes:
        """The realm challenge: the 64 bytes the token binds (cchet's transcript, DESIGN.md section 4)."""
        return self.realm_claims.challenge

    @property
    def simulated(self) -> bool:
        """Whether the platform names a SIMULATED implementation (a label, not a verification)."""
        return b"SIMULATED" in self.platform_claims.implementation_id

    def to_bytes(self) -> bytes:
        """The token's encoding: the exact inverse of :func:`parse_token`."""
        parts = [(PLATFORM_TOKEN, self.platform.to_bytes()), (REALM_TOKEN, self.realm.to_bytes())]
        if not self.platform_first:
            parts.reverse()
        return cbor2.dumps(cbor2.CBORTag(COLLECTION_TAG, dict(parts)))


def _take(claims: Mapping[Any, Any], key: int, typ: type | tuple[type, ...], where: str, name: str) -> Any:
    if key not in claims:
        raise EvidenceFormatError(f"missing claim {key} ({name})", field=f"{where}.claims[{key}]")
    value = claims[key]
    if not isinstance(value, typ) or isinstance(value, bool):
        raise EvidenceFormatError(f"claim {key} ({name}) has the wrong type", field=f"{where}.claims[{key}]")
    return value


def _optional(claims: Mapping[Any, Any], key: int, typ: type, where: str, name: str) -> Any:
    return _take(claims, key, typ, where, name) if key in claims else None


def _sized(value: bytes, sizes: Sequence[int], where: str, key: int, name: str) -> bytes:
    if len(value) not in sizes:
        want = " or ".join(map(str, sizes))
        raise EvidenceFormatError(f"{name} is {len(value)} bytes, expected {want}", field=f"{where}.claims[{key}]")
    return bytes(value)


def _claims_map(sign1: CoseSign1, where: str, offset: int) -> Mapping[Any, Any]:
    claims = decode_cbor(sign1.payload, f"{where}.payload", offset=offset)
    if not isinstance(claims, Mapping) or not all(isinstance(k, int) and not isinstance(k, bool) for k in claims):
        raise EvidenceFormatError(
            "the payload is not a map of integer claim keys", offset=offset, field=f"{where}.payload"
        )
    _exact(claims, sign1.payload, f"{where}.payload", offset)
    return claims


def _sw_component(entry: Any, index: int) -> SwComponent:
    where = f"platform.claims[{PLATFORM_SW_COMPONENTS_CLAIM}][{index}]"
    if not isinstance(entry, Mapping):
        raise EvidenceFormatError("a software component is not a map", field=where)
    # other keys (PSA's retired security epoch, 3) stay in the signed payload and are not interpreted

    def get(key: int, typ: type, name: str, required: bool) -> Any:
        if key not in entry:
            if required:
                raise EvidenceFormatError(f"missing {name} ({key})", field=f"{where}.{name}")
            return None
        if not isinstance(entry[key], typ):
            raise EvidenceFormatError(f"{name} ({key}) has the wrong type", field=f"{where}.{name}")
        return entry[key]

    measurement = get(SW_MEASUREMENT, bytes, "measurement-value", True)
    signer = get(SW_SIGNER_ID, bytes, "signer-id", True)
    for name, value in (("measurement-value", measurement), ("signer-id", signer)):
        if len(value) not in HASH_SIZES.values():
            raise EvidenceFormatError(f"{name} is {len(value)} bytes, expected 32, 48 or 64", field=f"{where}.{name}")
    return SwComponent(
        measurement=bytes(measurement),
        signer_id=bytes(signer),
        component_type=get(SW_TYPE, str, "component-type", False),
        version=get(SW_VERSION, str, "version", False),
        hash_algo=get(SW_HASH_ALGO, str, "hash-algo-id", False),
    )


def _platform_claims(claims: Mapping[Any, Any]) -> PlatformClaims:
    w = "platform"
    instance = _sized(
        _take(claims, PLATFORM_INSTANCE_ID_CLAIM, bytes, w, "instance-id"),
        (INSTANCE_ID_SIZE,),
        w,
        PLATFORM_INSTANCE_ID_CLAIM,
        "instance-id",
    )
    if instance[0] != INSTANCE_ID_TYPE:
        raise EvidenceFormatError(
            f"instance-id type is {instance[0]:#04x}, expected 0x01 (RAND)",
            field=f"{w}.claims[{PLATFORM_INSTANCE_ID_CLAIM}]",
        )
    lifecycle = _take(claims, PLATFORM_LIFECYCLE_CLAIM, int, w, "lifecycle")
    if not 0 <= lifecycle <= 0xFFFF:
        raise EvidenceFormatError("lifecycle is not a 16-bit state", field=f"{w}.claims[{PLATFORM_LIFECYCLE_CLAIM}]")
    components = _take(claims, PLATFORM_SW_COMPONENTS_CLAIM, (list, tuple), w, "sw-components")
    return PlatformClaims(
        profile=_take(claims, PROFILE_CLAIM, str, w, "profile"),
        challenge=_sized(
            _take(claims, CHALLENGE_CLAIM, bytes, w, "challenge"),
            tuple(HASH_SIZES.values()),
            w,
            CHALLENGE_CLAIM,
            "challenge",
        ),
        implementation_id=_sized(
            _take(claims, PLATFORM_IMPLEMENTATION_ID_CLAIM, bytes, w, "implementation-id"),
            (IMPLEMENTATION_ID_SIZE,),
            w,
            PLATFORM_IMPLEMENTATION_ID_CLAIM,
            "implementation-id",
        ),
        instance_id=instance,
        config=bytes(_take(claims, PLATFORM_CONFIG_CLAIM, bytes, w, "config")),
        lifecycle=lifecycle,
        sw_components=tuple(_sw_component(c, i) for i, c in enumerate(components)),
        hash_algo=_take(claims, PLATFORM_HASH_ALGO_CLAIM, str, w, "hash-algo-id"),
        verification_service=_optional(claims, PLATFORM_VERIFICATION_SERVICE_CLAIM, str, w, "verification-service"),
    )


def _realm_claims(claims: Mapping[Any, Any]) -> RealmClaims:
    w = "realm"
    algo = _take(claims, REALM_HASH_ALGO_CLAIM, str, w, "hash-algo-id")
    if algo not in HASH_SIZES:
        raise EvidenceFormatError(
            f"realm hash algorithm {algo!r} is not one of {', '.join(HASH_SIZES)}",
            field=f"{w}.claims[{REALM_HASH_ALGO_CLAIM}]",
        )
    size = (HASH_SIZES[algo],)
    rems = _take(claims, REALM_EXTENSIBLE_MEASUREMENTS_CLAIM, (list, tuple), w, "extensible-measurements")
    key = REALM_EXTENSIBLE_MEASUREMENTS_CLAIM
    if len(rems) != REM_COUNT or not all(isinstance(m, bytes) for m in rems):
        raise EvidenceFormatError(f"expected {REM_COUNT} byte strings", field=f"{w}.claims[{key}]")
    profile = _optional(claims, PROFILE_CLAIM, str, w, "profile")
    rak = bytes(_take(claims, REALM_PUBLIC_KEY_CLAIM, bytes, w, "public-key"))
    if profile != REALM_PROFILE:
        _sized(rak, (RAW_RAK_SIZE,), w, REALM_PUBLIC_KEY_CLAIM, "public-key (a raw P-384 point)")
        if rak[0] != 0x04:
            raise EvidenceFormatError(
                "public-key is not an uncompressed point", field=f"{w}.claims[{REALM_PUBLIC_KEY_CLAIM}]"
            )
    else:
        cose_key = decode_cbor(rak, f"{w}.claims[{REALM_PUBLIC_KEY_CLAIM}]")
        if not isinstance(cose_key, Mapping):
            raise EvidenceFormatError("public-key is not a COSE_Key map", field=f"{w}.claims[{REALM_PUBLIC_KEY_CLAIM}]")
        _exact(cose_key, rak, f"{w}.claims[{REALM_PUBLIC_KEY_CLAIM}]", None)
    return RealmClaims(
        challenge=_sized(
            _take(claims, CHALLENGE_CLAIM, bytes, w, "challenge"),
            (REALM_CHALLENGE_SIZE,),
            w,
            CHALLENGE_CLAIM,
            "challenge",
        ),
        personalization_value=_sized(
            _take(claims, REALM_PERSONALIZATION_CLAIM, bytes, w, "personalization-value"),
            (REALM_RPV_SIZE,),
            w,
            REALM_PERSONALIZATION_CLAIM,
            "personalization-value",
        ),
        initial_measurement=_sized(
            _take(claims, REALM_INITIAL_MEASUREMENT_CLAIM, bytes, w, "initial-measurement"),
            size,
            w,
            REALM_INITIAL_MEASUREMENT_CLAIM,
            "initial-measurement",
        ),
        extensible_measurements=tuple(  # type: ignore[arg-type]
            _sized(m, size, w, key, f"extensible-measurements[{i}]") for i, m in enumerate(rems)
        ),
        hash_algo=algo,
        public_key=rak,
        public_key_hash_algo=_take(claims, REALM_PUBLIC_KEY_HASH_ALGO_CLAIM, str, w, "public-key-hash-algo-id"),
        profile=profile,
    )


def _sign1(data: bytes, where: str, offset: int) -> CoseSign1:
    item = decode_cbor(data, where, offset=offset)
    if not isinstance(item, cbor2.CBORTag) or item.tag != COSE_SIGN1_TAG:
        raise EvidenceFormatError("not a tagged COSE_Sign1 (tag 18)", offset=offset, field=where)
    parts = item.value
    if not isinstance(parts, list | tuple) or len(parts) != 4:
        raise EvidenceFormatError("a COSE_Sign1 is an array of 4", offset=offset, field=where)
    protected, unprotected, payload, signature = parts
    if not isinstance(protected, bytes) or not isinstance(payload, bytes) or not isinstance(signature, bytes):
        raise EvidenceFormatError(
            "protected header, payload and signature must be byte strings", offset=offset, field=where
        )
    if not isinstance(unprotected, Mapping):
        raise EvidenceFormatError("the unprotected header must be a map", offset=offset, field=f"{where}.unprotected")
    header = decode_cbor(protected, f"{where}.protected", offset=offset)
    if not isinstance(header, Mapping) or not isinstance(header.get(1), int) or isinstance(header.get(1), bool):
        raise EvidenceFormatError(
            "the protected header names no algorithm (label 1)", offset=offset, field=f"{where}.protected"
        )
    _exact(header, protected, f"{where}.protected", offset)
    try:
        unprotected_bytes = cbor2.dumps(unprotected)
    except Exception as e:  # a decoded value cbor2 cannot write back
        raise EvidenceFormatError(f"cannot be re-encoded: {e}", offset=offset, field=f"{where}.unprotected") from None
    sign1 = CoseSign1(bytes(protected), unprotected_bytes, bytes(payload), bytes(signature), header[1])
    _same(sign1.to_bytes(), data, where, offset)
    return sign1


def parse_token(data: bytes) -> CcaToken:
    """The CCA token in ``data``; :class:`EvidenceFormatError` naming the field (and offset) otherwise."""
    data = bytes(data)
    if len(data) > MAX_TOKEN_BYTES:
        raise EvidenceFormatError(f"larger than {MAX_TOKEN_BYTES} bytes", offset=0, field="token")
    outer = decode_cbor(data, "token", offset=0)
    if not isinstance(outer, cbor2.CBORTag) or outer.tag != COLLECTION_TAG:
        raise EvidenceFormatError("not a CCA token collection (CBOR tag 399)", offset=0, field="token")
    collection = outer.value
    if not isinstance(collection, Mapping) or set(collection) != {PLATFORM_TOKEN, REALM_TOKEN}:
        raise EvidenceFormatError(
            f"the collection must map exactly {PLATFORM_TOKEN} (platform) and {REALM_TOKEN} (realm)",
            offset=3,
            field="token.collection",
        )
    pieces: dict[int, CoseSign1] = {}
    for key, where in ((PLATFORM_TOKEN, "platform"), (REALM_TOKEN, "realm")):
        raw = collection[key]
        if not isinstance(raw, bytes):
            raise EvidenceFormatError("must be a byte string holding a COSE_Sign1", field=f"token.collection[{key}]")
        pieces[key] = _sign1(raw, where, data.find(raw))
    platform_first = next(iter(collection)) == PLATFORM_TOKEN
    platform, realm = pieces[PLATFORM_TOKEN], pieces[REALM_TOKEN]
    token = CcaToken(
        platform=platform,
        realm=realm,
        platform_claims=_platform_claims(_claims_map(platform, "platform", data.find(platform.payload))),
        realm_claims=_realm_claims(_claims_map(realm, "realm", data.find(realm.payload))),
        platform_first=platform_first,
    )
    _same(token.to_bytes(), data, "token", 0)
    return token
