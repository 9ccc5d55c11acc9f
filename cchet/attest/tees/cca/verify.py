"""Verifying a CCA token as the CPU device, in the order of Veraison's ccatoken and with every check run:

1. ``cca.chain``: a trust anchor of vendor ``arm-cca`` endorses the platform (its instance-id, and its
   implementation-id where the anchor names one): its CPAK is the key the platform token must be signed by.
   Without one nothing vouches for the platform, and the failure names the instance-id to endorse.
2. ``cca.platform_signature``: the platform COSE_Sign1 verifies under that CPAK.
3. ``cca.realm_signature``: the realm COSE_Sign1 verifies under the RAK the realm token carries.
4. ``cca.rak_binding``: the platform challenge is the hash (realm claim 44240's algorithm) of the RAK claim's
   bytes, so the platform vouches for exactly this RAK, and through it for the realm token.
5. ``cca.nonce``: with expected report data, the realm challenge is exactly those bytes (never padded).

Endorsements are local trust anchors (:mod:`cchet.attest.tees.cca.endorsement`); nothing is fetched. The
platform's lifecycle state is judged by appraisal (``allow_debug``), its measurements by the policy table.
"""

from __future__ import annotations

import hashlib
import hmac

from cchet.attest.tees.cca.cose import public_key_from_rak, verify_sign1
from cchet.attest.tees.cca.endorsement import VENDOR, anchor_public_key, anchors_for_platform
from cchet.attest.tees.cca.token import REALM_PROFILE, CcaToken
from cchet.attest.verify.failure import Failure
from cchet.attest.verify.options import TrustAnchor, VerifyOptions
from cchet.attest.verify.verified import VerifiedDevice

__all__ = ["verify_cca_token"]

_HASHES = {"sha-256": hashlib.sha256, "sha-384": hashlib.sha384, "sha-512": hashlib.sha512}


def _platform(
    token: CcaToken, anchors: tuple[TrustAnchor, ...], carried: bytes
) -> tuple[TrustAnchor | None, list[str]]:
    claims = token.platform_claims
    endorsing = anchors_for_platform(anchors, claims)
    if not endorsing:
        note = (
            "; keys or certificates that come with the evidence (or --certs) are never taken as a CPAK"
            if carried
            else ""
        )
        return None, [
            Failure(
                "cca.chain",
                f"no Arm CCA endorsement (trust anchor of vendor {VENDOR}) for the platform with instance-id "
                f"{claims.instance_id.hex()} and implementation-id {claims.implementation_id.hex()}: its CPAK is "
                f"unknown, so the platform token is not verified (load the platform's endorsement, e.g. a "
                f"tastore.json, as trust anchors: cchet.attest.tees.cca.endorsement.anchors_from_tastore){note}",
            )
        ]
    why = []
    for anchor in endorsing:
        try:
            problem = verify_sign1(token.platform, anchor_public_key(anchor))
        except ValueError as e:
            problem = f"the anchor's CPAK is unusable: {e}"
        if problem is None:
            return anchor, []
        why.append(problem)
    return None, [
        Failure(
            "cca.platform_signature",
            f"platform token not signed by the CPAK endorsed for instance-id {claims.instance_id.hex()}: "
            + "; ".join(dict.fromkeys(why)),
        )
    ]


def _realm(token: CcaToken) -> list[str]:
    claims = token.realm_claims
    try:
        rak = public_key_from_rak(claims.public_key, cose_key=claims.profile == REALM_PROFILE)
    except ValueError as e:
        return [Failure("cca.realm_signature", f"realm token not verified: its RAK (claim 44237) is unusable: {e}")]
    problem = verify_sign1(token.realm, rak)
    if problem is not None:
        return [Failure("cca.realm_signature", f"realm token not signed by its RAK: {problem}")]
    return []


def _binding(token: CcaToken) -> list[str]:
    algo = token.realm_claims.public_key_hash_algo
    hash_function = _HASHES.get(algo)
    challenge = token.platform_claims.challenge
    if hash_function is None:
        return [
            Failure(
                "cca.rak_binding",
                f"RAK hash algorithm {algo!r} (realm claim 44240) is not one of {', '.join(_HASHES)}: the platform "
                f"challenge cannot bind the RAK",
            )
        ]
    digest = hash_function(token.realm_claims.public_key).digest()
    if not hmac.compare_digest(digest, challenge):
        return [
            Failure(
                "cca.rak_binding",
                f"platform challenge (claim 10) {challenge.hex()} is not the {algo} of the realm's RAK "
                f"({digest.hex()}): the platform does not vouch for this realm token",
            )
        ]
    return []


def verify_cca_token(
    token: CcaToken,
    options: VerifyOptions,
    *,
    expected_report_data: bytes | None = None,
    carried: bytes = b"",
) -> tuple[VerifiedDevice, list[str]]:
    """The verified CPU device and every failure (each a :class:`~cchet.attest.verify.failure.Failure` of a
    ``cca.*`` check). The device is stamped simulated when the endorsing anchor is simulated. ``carried`` is what
    came with the evidence as its certificates: a CCA token needs none, and nothing in it is trusted (a CPAK
    that came with the evidence would vouch for itself); it only makes a ``cca.chain`` failure say so."""
    anchor, failures = _platform(token, options.anchors_for(VENDOR), carried)
    failures += _realm(token)
    failures += _binding(token)
    challenge = token.realm_claims.challenge
    if expected_report_data is not None and not hmac.compare_digest(expected_report_data, challenge):
        failures.append(
            Failure(
                "cca.nonce",
                f"realm challenge (claim 10) is {challenge.hex()}, expected {expected_report_data.hex()} "
                f"({len(expected_report_data)} bytes)",
            )
        )
    device = VerifiedDevice("cpu", "cca", bool(anchor and anchor.simulated), anchor.fingerprint if anchor else "")
    return device, failures
