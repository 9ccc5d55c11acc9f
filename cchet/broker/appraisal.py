"""The broker's appraiser: wire evidence -> parse -> verify -> appraise, plus the key-release floor.

It calls :func:`cchet.attest.appraise` and nothing else decides; on top it adds the one rule that belongs to
key release rather than to attestation (DESIGN.md section 1): **a policy that pins no CPU measurement
releases no key**, unless the evidence is simulated and the policy allows simulation, or the policy says
``measurements="any"`` explicitly (which the policy logs loudly).
"""

from __future__ import annotations

import hashlib
from typing import Any

from cchet.attest.binding import Binding
from cchet.attest.evidence import decode_composite
from cchet.attest.verify.options import VerifyOptions
from cchet.broker.broker import Appraisal
from cchet.broker.messages import ProtocolError, b64d
from cchet.errors import EvidenceFormatError

__all__ = ["EvidenceAppraiser", "unpinned_policy_reason"]


def unpinned_policy_reason(policy: Any, kind: str, simulated: bool) -> str | None:
    """Why ``policy`` may not release keys for ``kind`` evidence, or None when it may."""
    if policy.measurements == "any" or policy.pins_cpu(kind):
        return None
    if simulated and policy.allow_simulation:
        return None
    return (
        f"policy {policy.policy_id} pins no {kind} measurement: keys are released only under pinned "
        "measurements (write one with 'cchet policy from-evidence', or set measurements='any' explicitly)"
    )


class EvidenceAppraiser:
    """Appraises base64 composite evidence (``cchet-evidence/v1``) under ``options``."""

    def __init__(self, options: VerifyOptions) -> None:
        self.options = options

    def __call__(self, evidence: object, policy: Any, *, nonce: bytes, binding: Binding) -> Appraisal:
        from cchet.attest import appraise

        try:
            raw = b64d(evidence, "evidence")
        except ProtocolError as e:
            return Appraisal((f"evidence: {e}",), False, "")
        digest = hashlib.sha256(raw).hexdigest()
        try:
            composite = decode_composite(raw)
        except EvidenceFormatError as e:
            return Appraisal((f"evidence does not parse: {e}",), False, digest)
        result = appraise(composite, policy, nonce=nonce, binding=binding, options=self.options)
        reasons = list(result.reasons)
        floor = unpinned_policy_reason(policy, composite.cpu.kind, result.simulated)
        if floor is not None:
            reasons.append(floor)
        return Appraisal(
            tuple(reasons), result.simulated, result.evidence_digest or digest, tuple(result.gpu_transcripts)
        )
