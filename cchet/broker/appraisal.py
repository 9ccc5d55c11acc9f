"""The broker's appraiser: wire evidence -> parse -> verify once -> evaluate every policy
(:func:`cchet.attest.appraise.verify_evidence` and :func:`~cchet.attest.appraise.evaluate`).

Appraisal alone decides; the broker adds nothing but the transport. The key-release floor of DESIGN.md
section 1 (a policy that pins no CPU measurement releases no key, unless simulated evidence meets
``allow_simulation`` or the policy says ``measurements="any"``) is the policy's ``measurements`` rule. A
request for keys under several policies is verified once -- every signature, chain and collateral check --
and each policy is evaluated against that one verification.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any

from cchet.attest.binding import Binding
from cchet.attest.evidence import CompositeEvidence
from cchet.attest.result import AttestationResult
from cchet.attest.verify.options import VerifyOptions
from cchet.broker.broker import Appraisal
from cchet.broker.messages import ProtocolError, b64d
from cchet.errors import AttestationError

__all__ = ["EvidenceAppraiser"]


def _appraisal(result: AttestationResult, evidence: CompositeEvidence) -> Appraisal:
    from cchet.attest.claims import gpu_identity

    cpu = next((d for d in result.devices if d.device == "cpu"), None)
    gpus = [d for d in result.devices if d.device.startswith("gpu")]
    passed = {d.device for d in gpus if result.accepted and d.status == "affirming"}
    return Appraisal(
        tuple(result.reasons),
        result.simulated,
        result.evidence_digest,
        tuple(result.gpu_transcripts),
        tee_kind=cpu.kind if cpu is not None and result.accepted else "",
        gpus=len(gpus),
        gpus_affirmed=bool(gpus) and result.accepted and all(d.status == "affirming" for d in gpus),
        warnings=result.warnings,
        gpu_identities=tuple(gpu_identity(g) for g in evidence.gpus if f"gpu{g.index}" in passed),
    )


class EvidenceAppraiser:
    """Appraises base64 composite evidence (``cchet-evidence/v1``) under ``options``."""

    def __init__(self, options: VerifyOptions) -> None:
        self.options = options

    def __call__(
        self, evidence: object, policies: Sequence[Any], *, nonce: bytes, binding: Binding, nonce_age_s: float
    ) -> tuple[Appraisal, ...]:
        from cchet.attest.appraise import evaluate, verify_evidence
        from cchet.attest.evidence import decode_composite

        try:
            raw = b64d(evidence, "evidence")
        except ProtocolError as e:
            return tuple(Appraisal((f"evidence: {e}",), False, "") for _ in policies)
        try:
            composite = decode_composite(raw)
        except AttestationError as e:
            digest = hashlib.sha256(raw).hexdigest()
            return tuple(Appraisal((f"evidence does not parse: {e}",), False, digest) for _ in policies)
        verified = verify_evidence(composite, self.options)
        issued = verified.verified_at - dt.timedelta(seconds=nonce_age_s)
        return tuple(
            _appraisal(evaluate(verified, policy, nonce=nonce, binding=binding, nonce_issued_at=issued), composite)
            for policy in policies
        )
