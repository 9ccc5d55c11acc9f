"""The CCA platform's security lifecycle (platform claim 2395) and which states keep a realm confidential.

The claim is a 16-bit value whose high byte is the state and whose low byte is an IMPLEMENTATION DEFINED
sub-state, as the PSA attestation token defines it (PSA Certified Attestation API / draft-tschofenig-rats-psa-
token, "security lifecycle": unknown 0x0000, assembly-and-test 0x1000, PSA-RoT provisioning 0x2000, secured
0x3000, non-PSA-RoT debug 0x4000, recoverable PSA-RoT debug 0x5000, decommissioned 0x6000, each ``+ 0x00``..
``0xff``) and the CCA platform token reuses it with "CCA platform" for "PSA RoT" (Arm RMM specification
DEN0137, chapter A7, claim ``cca-platform-lifecycle``).

Secured states: ``secured`` and ``non-cca-platform-debug`` -- in the latter only components outside the CCA
platform are debuggable, the platform that protects realms is not -- which are the two states Veraison's CCA
appraisal accepts as secured. Every other state (and any value outside these ranges) lets someone debug the
CCA platform itself or says nothing about it, so cchet counts it as debug: refused unless a policy sets
``allow_debug``.
"""

from __future__ import annotations

__all__ = ["LIFECYCLE_STATES", "SECURED_STATES", "is_debug", "lifecycle_state"]

LIFECYCLE_STATES = {
    0x00: "unknown",
    0x10: "assembly-and-test",
    0x20: "cca-platform-rot-provisioning",
    0x30: "secured",
    0x40: "non-cca-platform-debug",
    0x50: "recoverable-cca-platform-debug",
    0x60: "decommissioned",
}
SECURED_STATES = ("secured", "non-cca-platform-debug")


def lifecycle_state(value: int) -> str:
    """The state's name (``secured`` for 0x3003), or ``invalid`` for a value outside every range."""
    return LIFECYCLE_STATES.get(value >> 8, "invalid") if 0 <= value <= 0xFFFF else "invalid"


def is_debug(value: int) -> bool:
    """True unless the lifecycle ``value`` is one of :data:`SECURED_STATES`."""
    return lifecycle_state(value) not in SECURED_STATES
