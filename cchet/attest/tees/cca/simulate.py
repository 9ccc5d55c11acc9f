"""SIMULATED Arm CCA tokens: the real format, signed by simulated keys. SIMULATED EVIDENCE PROTECTS NOTHING.

A simulated CCA platform lives in the ``cca`` subfolder of a :class:`~cchet.attest.simulate.authority.
SimulatedAuthority`'s key directory, created atomically on first use (mode 0700, files 0600): its CPAK and RAK
(P-384 keys) and its identifiers -- an implementation-id that reads ``cchet SIMULATED CCA platform`` and an
instance-id ``0x01 || SHA-256(CPAK SubjectPublicKeyInfo)``. Its trust anchor names it SIMULATED
(:func:`simulated_cpak_anchor`). Tokens are the tag-399 collection of a platform COSE_Sign1 (ES384) by the
CPAK, whose challenge is the hash of the RAK claim, and a realm COSE_Sign1 (ES384) by the RAK, whose challenge
is the report data; they are built as bytes and parsed back, so what the simulator returns is exactly what
:func:`~cchet.attest.tees.cca.token.parse_token` makes of its bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import cbor2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cchet.attest.simulate.keydir import create_key_dir, pkcs8_pem, write_private
from cchet.attest.tees.cca.cose import cose_key_bytes, sign_sign1, spki_der
from cchet.attest.tees.cca.endorsement import cpak_anchor
from cchet.attest.tees.cca.token import (
    CHALLENGE_CLAIM,
    COLLECTION_TAG,
    HASH_SIZES,
    PLATFORM_CONFIG_CLAIM,
    PLATFORM_HASH_ALGO_CLAIM,
    PLATFORM_IMPLEMENTATION_ID_CLAIM,
    PLATFORM_INSTANCE_ID_CLAIM,
    PLATFORM_LIFECYCLE_CLAIM,
    PLATFORM_PROFILES,
    PLATFORM_SW_COMPONENTS_CLAIM,
    PLATFORM_TOKEN,
    PLATFORM_VERIFICATION_SERVICE_CLAIM,
    PROFILE_CLAIM,
    REALM_EXTENSIBLE_MEASUREMENTS_CLAIM,
    REALM_HASH_ALGO_CLAIM,
    REALM_INITIAL_MEASUREMENT_CLAIM,
    REALM_PERSONALIZATION_CLAIM,
    REALM_PROFILE,
    REALM_PUBLIC_KEY_CLAIM,
    REALM_PUBLIC_KEY_HASH_ALGO_CLAIM,
    REALM_TOKEN,
    SW_HASH_ALGO,
    SW_MEASUREMENT,
    SW_SIGNER_ID,
    SW_TYPE,
    SW_VERSION,
    CcaToken,
    SwComponent,
    parse_token,
)

if TYPE_CHECKING:
    from cchet.attest.simulate.authority import SimulatedAuthority
    from cchet.attest.verify.options import TrustAnchor

__all__ = [
    "DEFAULT_RIM",
    "DEFAULT_SW_COMPONENTS",
    "SIMULATED_IMPLEMENTATION",
    "SUBFOLDER",
    "SimulatedCcaPlatform",
    "simulate_cca_token",
    "simulated_cpak_anchor",
    "simulated_platform",
]

SUBFOLDER = "cca"
SIMULATED_IMPLEMENTATION = b"cchet SIMULATED CCA platform"  # the implementation-id's first 28 of 32 bytes
SIM_VERIFICATION_SERVICE = "https://cchet.invalid/SIMULATED-cca-verifier"
ES384_PROTECTED = cbor2.dumps({1: -35})
DEFAULT_RIM = hashlib.sha512(b"cchet SIMULATED CCA realm initial measurement").digest()
_SIGNER = hashlib.sha256(b"cchet SIMULATED CCA firmware signer").digest()
DEFAULT_SW_COMPONENTS = tuple(
    SwComponent(
        measurement=hashlib.sha256(b"cchet SIMULATED " + name.encode()).digest(),
        signer_id=_SIGNER,
        component_type=name,
        version="1.0.0",
        hash_algo="sha-256",
    )
    for name in ("RSE_BL1_2", "RSE_BL2", "RSE_S", "AP_BL1", "AP_BL2", "AP_BL31", "RMM")
)
FIELDS = (
    "rim",
    "rems",
    "rpv",
    "realm_hash_algo",
    "rak_hash_algo",
    "realm_profile",
    "platform_profile",
    "platform_config",
    "lifecycle",
    "debug",
    "sw_components",
    "implementation_id",
    "instance_id",
    "platform_challenge",
)


@dataclass(frozen=True, repr=False)
class SimulatedCcaPlatform:
    """The simulated platform's keys and identifiers (see the module docstring). Like every holder of keys it
    shows no key in its ``repr`` and refuses to be pickled (the keys stay in the key directory)."""

    cpak: ec.EllipticCurvePrivateKey
    rak: ec.EllipticCurvePrivateKey
    implementation_id: bytes
    instance_id: bytes

    def __repr__(self) -> str:
        return f"SimulatedCcaPlatform(instance_id={self.instance_id.hex()}, SIMULATED)"

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "a simulated CCA platform holds private keys and is not pickled; open it from its key directory"
        )


def _fill(tmp: Path) -> None:
    cpak, rak = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP384R1())
    implementation = SIMULATED_IMPLEMENTATION + os.urandom(32 - len(SIMULATED_IMPLEMENTATION))
    instance = b"\x01" + hashlib.sha256(spki_der(cpak.public_key())).digest()
    write_private(tmp / "cpak.key", pkcs8_pem(cpak))
    write_private(tmp / "rak.key", pkcs8_pem(rak))
    ids = {"implementation-id": implementation.hex(), "instance-id": instance.hex()}
    write_private(tmp / "platform.json", json.dumps(ids).encode())


def _key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP384R1):
        raise ValueError(f"{path} is not a P-384 private key")
    return key


def simulated_platform(authority: SimulatedAuthority) -> SimulatedCcaPlatform:
    """The simulated CCA platform beside ``authority``'s keys, created on first use. Raises ``OSError`` when
    the folder cannot be made or read, ``ValueError`` when a file in it is not what this module wrote."""
    target = Path(authority.key_dir) / SUBFOLDER
    if not (target / "platform.json").exists():
        create_key_dir(target, ".sim-cca-", "platform.json", _fill)
    ids = json.loads((target / "platform.json").read_text())
    implementation, instance = bytes.fromhex(ids["implementation-id"]), bytes.fromhex(ids["instance-id"])
    if len(implementation) != 32 or SIMULATED_IMPLEMENTATION not in implementation or len(instance) != 33:
        raise ValueError(f"{target / 'platform.json'} does not hold a simulated platform's identifiers")
    return SimulatedCcaPlatform(_key(target / "cpak.key"), _key(target / "rak.key"), implementation, instance)


def simulated_cpak_anchor(authority: SimulatedAuthority) -> TrustAnchor:
    """The simulated platform's CPAK as a simulated ``arm-cca`` trust anchor (its name says SIMULATED)."""
    platform = simulated_platform(authority)
    return cpak_anchor(
        platform.cpak.public_key(),
        implementation_id=platform.implementation_id,
        instance_id=platform.instance_id,
        simulated=True,
    )


def _component(c: SwComponent) -> dict[int, Any]:
    out: dict[int, Any] = {}
    if c.component_type is not None:
        out[SW_TYPE] = c.component_type
    out[SW_MEASUREMENT] = c.measurement
    if c.version is not None:
        out[SW_VERSION] = c.version
    out[SW_SIGNER_ID] = c.signer_id
    if c.hash_algo is not None:
        out[SW_HASH_ALGO] = c.hash_algo
    return out


def simulate_cca_token(authority: SimulatedAuthority, *, report_data: bytes, **fields: Any) -> CcaToken:
    """A SIMULATED CCA token whose realm challenge is ``report_data`` (exactly 64 bytes).

    ``fields`` (``ValueError`` for others) override: ``rim`` (default :data:`DEFAULT_RIM`), ``rems`` (four
    measurements, default zero), ``rpv`` (64 bytes, default zero), ``realm_hash_algo`` (``sha-512``),
    ``rak_hash_algo`` (``sha-256``), ``realm_profile`` (:data:`~cchet.attest.tees.cca.token.REALM_PROFILE`,
    whose RAK is a COSE_Key; None for the earlier raw-point form), ``platform_profile``, ``platform_config``,
    ``lifecycle`` (0x3000, secured), ``debug`` (True: lifecycle 0x5000, recoverable CCA platform debug),
    ``sw_components`` (:data:`DEFAULT_SW_COMPONENTS`), ``implementation_id`` and ``instance_id`` (the
    platform's own), ``platform_challenge`` (default the RAK claim's hash: anything else breaks the binding).
    Sizes are those the parser checks (``EvidenceFormatError`` from it otherwise).
    """
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown simulated CCA field(s) {', '.join(unknown)}; valid: {', '.join(FIELDS)}")
    if len(report_data) != 64:
        raise ValueError("report_data must be exactly 64 bytes")
    platform = simulated_platform(authority)
    realm_algo = fields.get("realm_hash_algo", "sha-512")
    size = HASH_SIZES.get(realm_algo, 64)
    rak_algo = fields.get("rak_hash_algo", "sha-256")
    profile = fields.get("realm_profile", REALM_PROFILE)
    rak_public = platform.rak.public_key()
    rak = (
        cose_key_bytes(rak_public)
        if profile == REALM_PROFILE
        else rak_public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    realm: dict[int, Any] = {
        CHALLENGE_CLAIM: bytes(report_data),
        REALM_PERSONALIZATION_CLAIM: bytes(fields.get("rpv", bytes(64))),
        REALM_PUBLIC_KEY_CLAIM: rak,
        REALM_HASH_ALGO_CLAIM: realm_algo,
        REALM_PUBLIC_KEY_HASH_ALGO_CLAIM: rak_algo,
        REALM_INITIAL_MEASUREMENT_CLAIM: bytes(fields.get("rim", DEFAULT_RIM[:size])),
        REALM_EXTENSIBLE_MEASUREMENTS_CLAIM: [bytes(m) for m in fields.get("rems", [bytes(size)] * 4)],
    }
    if profile is not None:
        realm[PROFILE_CLAIM] = profile
    challenge = fields.get("platform_challenge")
    if challenge is None:
        challenge = hashlib.new(rak_algo.replace("-", ""), rak).digest()
    lifecycle = fields.get("lifecycle", 0x5000 if fields.get("debug") else 0x3000)
    components: Sequence[SwComponent] = fields.get("sw_components", DEFAULT_SW_COMPONENTS)
    claims: dict[int, Any] = {
        PROFILE_CLAIM: fields.get("platform_profile", PLATFORM_PROFILES[0]),
        CHALLENGE_CLAIM: bytes(challenge),
        PLATFORM_IMPLEMENTATION_ID_CLAIM: bytes(fields.get("implementation_id", platform.implementation_id)),
        PLATFORM_INSTANCE_ID_CLAIM: bytes(fields.get("instance_id", platform.instance_id)),
        PLATFORM_CONFIG_CLAIM: bytes(fields.get("platform_config", b"\xcf\xcf\xcf\xcf")),
        PLATFORM_LIFECYCLE_CLAIM: lifecycle,
        PLATFORM_HASH_ALGO_CLAIM: "sha-256",
        PLATFORM_VERIFICATION_SERVICE_CLAIM: SIM_VERIFICATION_SERVICE,
        PLATFORM_SW_COMPONENTS_CLAIM: [_component(c) for c in components],
    }
    platform_token = sign_sign1(ES384_PROTECTED, cbor2.dumps(claims), platform.cpak, -35)
    realm_token = sign_sign1(ES384_PROTECTED, cbor2.dumps(realm), platform.rak, -35)
    collection = {PLATFORM_TOKEN: platform_token.to_bytes(), REALM_TOKEN: realm_token.to_bytes()}
    return parse_token(cbor2.dumps(cbor2.CBORTag(COLLECTION_TAG, collection)))
