"""The outcome of an appraisal: per-device claims, every violation, and whether it was simulated.

An :class:`AttestationResult` is data: it never raises by itself. :meth:`AttestationResult.raise_for_status`
turns a rejection into :class:`~cchet.errors.VerificationError` (signatures, chains, collateral) or
:class:`~cchet.errors.PolicyViolation` (the policy), listing every reason. Anything verified under a simulated
root says SIMULATED in its ``str``, its EAR form and its HTML.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cchet.errors import PolicyViolation, VerificationError

__all__ = ["EAR_PROFILE", "AttestationResult", "DeviceClaims", "Violation"]

EAR_PROFILE = "tag:github.com,2023:veraison/ear"


@dataclass(frozen=True)
class Violation:
    """One failed rule: the policy field, the evidence field it checked, and what was expected and found."""

    rule: str
    evidence_field: str
    device: str
    expected: str
    actual: str

    def __str__(self) -> str:
        return (
            f"{self.device}: policy.{self.rule}: evidence {self.evidence_field} is {self.actual}, "
            f"policy expects {self.expected}"
        )


@dataclass(frozen=True)
class DeviceClaims:
    """Normalised claims of one device (``cpu`` or ``gpu<i>``) and its EAR status: ``affirming`` when it broke
    no rule, ``contraindicated`` otherwise."""

    device: str
    kind: str
    status: str
    simulated: bool
    claims: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AttestationResult:
    """The appraisal of one piece of composite evidence under one policy.

    ``accepted`` holds only when verification passed and no rule was violated. ``simulated`` is True when the
    evidence chained to a simulated root: such a result protects nothing, and says so. ``warnings`` name what
    an accepting policy explicitly let through unchecked (``measurements="any"``, GPUs whose RIMs were not
    compared, a GPU in devtools mode): whoever relies on the result logs and records them.
    """

    accepted: bool
    simulated: bool
    policy_id: str
    devices: tuple[DeviceClaims, ...]
    violations: tuple[Violation, ...]
    verification_failures: tuple[str, ...]
    evidence_digest: str
    appraised_at: dt.datetime
    verifier: str
    gpu_transcripts: tuple[tuple[int, bytes, bytes], ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def reasons(self) -> tuple[str, ...]:
        """Every reason for rejection, verification failures first; empty when accepted."""
        return self.verification_failures + tuple(str(v) for v in self.violations)

    def raise_for_status(self) -> None:
        """Raises :class:`VerificationError` if verification failed, else :class:`PolicyViolation` if a rule
        was violated; returns None when accepted."""
        if self.verification_failures:
            raise VerificationError(self.verification_failures)
        if self.violations:
            raise PolicyViolation(str(v) for v in self.violations)

    def device(self, name: str) -> DeviceClaims:
        """The claims of ``name`` (``"cpu"``, ``"gpu0"``...); raises ``KeyError`` when absent."""
        for d in self.devices:
            if d.device == name:
                return d
        raise KeyError(name)

    def to_ear(self) -> dict[str, Any]:
        """An EAR-shaped JSON object: one submodule per device with its status and annotated claims."""
        return {
            "eat_profile": EAR_PROFILE,
            "iat": int(self.appraised_at.timestamp()),
            "ear.verifier-id": {"developer": "cchet", "build": self.verifier},
            "ear.status": "affirming" if self.accepted else "contraindicated",
            "cchet.simulated": self.simulated,
            "cchet.policy-id": self.policy_id,
            "cchet.evidence-digest": self.evidence_digest,
            "cchet.reasons": list(self.reasons),
            "cchet.warnings": list(self.warnings),
            "submods": {
                d.device: {
                    "ear.status": d.status,
                    "cchet.kind": d.kind,
                    "cchet.simulated": d.simulated,
                    "ear.veraison.annotated-evidence": dict(d.claims),
                }
                for d in self.devices
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.to_ear(), indent=2, sort_keys=True)

    def __str__(self) -> str:
        head = "ACCEPTED" if self.accepted else "REJECTED"
        sim = " -- SIMULATED: protects nothing" if self.simulated else ""
        lines = [f"{head} under policy {self.policy_id}{sim}"]
        lines += [f"  {d.device} ({d.kind}): {d.status}" for d in self.devices]
        lines += [f"  - {r}" for r in self.reasons]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        e = html.escape
        colour = "#1a7f37" if self.accepted else "#cf222e"
        verdict = "ACCEPTED" if self.accepted else "REJECTED"
        parts = [
            "<div class='cchet-attestation'>",
            f"<p><b style='color:{colour}'>{verdict}</b> under policy <code>{e(self.policy_id)}</code>",
        ]
        if self.simulated:
            parts.append(" <b style='color:#bf8700'>SIMULATED &mdash; protects nothing</b>")
        parts.append("</p><table><tr><th>device</th><th>kind</th><th>status</th><th>claims</th></tr>")
        for d in self.devices:
            claims = "<br>".join(
                f"{e(k)}: <code>{e(str(v)[:64])}</code>" for k, v in d.claims.items() if k != "measurements"
            )
            parts.append(f"<tr><td>{e(d.device)}</td><td>{e(d.kind)}</td><td>{e(d.status)}</td><td>{claims}</td></tr>")
        parts.append("</table>")
        if self.reasons:
            parts.append("<ul>" + "".join(f"<li>{e(r)}</li>" for r in self.reasons) + "</ul>")
        parts.append("</div>")
        return "".join(parts)
