"""The broker's appraiser: wire evidence -> parse -> verify -> appraise (:func:`cchet.attest.appraise`).

Appraisal alone decides; the broker adds nothing but the transport. The key-release floor of DESIGN.md
section 1 (a policy that pins no CPU measurement releases no key, unless simulated evidence meets
``allow_simulation`` or the policy says ``measurements="any"``) is the policy's ``measurements`` rule.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from cchet.attest.binding import Binding
from cchet.attest.verify.options import VerifyOptions
from cchet.broker.broker import Appraisal
from cchet.broker.messages import ProtocolError, b64d

__all__ = ["EvidenceAppraiser"]


class EvidenceAppraiser:
    """Appraises base64 composite evidence (``cchet-evidence/v1``) under ``options``."""

    def __init__(self, options: VerifyOptions) -> None:
        self.options = options

    def __call__(
        self, evidence: object, policy: Any, *, nonce: bytes, binding: Binding, nonce_age_s: float
    ) -> Appraisal:
        from cchet.attest.appraise import appraise

        try:
            raw = b64d(evidence, "evidence")
        except ProtocolError as e:
            return Appraisal((f"evidence: {e}",), False, "")
        issued = self.options.now() - dt.timedelta(seconds=nonce_age_s)
        result = appraise(raw, policy, nonce=nonce, binding=binding, options=self.options, nonce_issued_at=issued)
        cpu = next((d for d in result.devices if d.device == "cpu"), None)
        gpus = [d for d in result.devices if d.device.startswith("gpu")]
        return Appraisal(
            tuple(result.reasons),
            result.simulated,
            result.evidence_digest or hashlib.sha256(raw).hexdigest(),
            tuple(result.gpu_transcripts),
            tee_kind=cpu.kind if cpu is not None and result.accepted else "",
            gpus=len(gpus),
            gpus_affirmed=bool(gpus) and result.accepted and all(d.status == "affirming" for d in gpus),
        )
