"""Normalised claims of a CCA token (``cchet verify --json``, :class:`~cchet.attest.result.AttestationResult`):
hex strings for measurements and identifiers, names for the lifecycle state."""

from __future__ import annotations

from typing import Any

from cchet.attest.tees.cca.lifecycle import is_debug, lifecycle_state
from cchet.attest.tees.cca.token import CcaToken

__all__ = ["token_claims"]


def token_claims(token: CcaToken) -> dict[str, Any]:
    """The token's claims, ``kind`` included (``report_data``, the realm challenge, is added by
    :func:`cchet.attest.claims.cpu_claims`)."""
    realm, platform = token.realm_claims, token.platform_claims
    return {
        "kind": "cca",
        "rim": realm.initial_measurement.hex(),
        "rems": [m.hex() for m in realm.extensible_measurements],
        "rpv": realm.personalization_value.hex(),
        "realm_hash_algo": realm.hash_algo,
        "realm_profile": realm.profile,
        "rak": realm.public_key.hex(),
        "rak_hash_algo": realm.public_key_hash_algo,
        "platform_profile": platform.profile,
        "platform_challenge": platform.challenge.hex(),
        "implementation_id": platform.implementation_id.hex(),
        "instance_id": platform.instance_id.hex(),
        "platform_config": platform.config.hex(),
        "platform_hash_algo": platform.hash_algo,
        "lifecycle": f"{platform.lifecycle:#06x}",
        "lifecycle_state": lifecycle_state(platform.lifecycle),
        "verification_service": platform.verification_service,
        "sw_components": [
            {
                "type": c.component_type,
                "measurement": c.measurement.hex(),
                "signer_id": c.signer_id.hex(),
                "version": c.version,
                "hash_algo": c.hash_algo,
            }
            for c in platform.sw_components
        ],
        "debug": is_debug(platform.lifecycle),
    }
