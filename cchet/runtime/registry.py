"""The registry of attested nodes that placement trusts (first slice: the nodes of the session's cluster).

Each node proves itself with composite evidence collected by a node-agent task pinned to it, bound to a fresh
nonce and to this broker; the driver appraises it against the session policy. Labels and resources a node
declares at ``ray start`` are never used: only appraised evidence qualifies a node.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import threading
from dataclasses import dataclass

from cchet.attest.binding import Binding
from cchet.attest.policy import Policy
from cchet.attest.result import AttestationResult
from cchet.attest.verify.options import VerifyOptions
from cchet.broker.audit import AuditLog
from cchet.broker.hpke import DEFAULT_SUITE

__all__ = ["NodeEntry", "NodeRegistry"]

ATTESTATION_TTL_S = 3600.0


@dataclass(frozen=True)
class NodeEntry:
    node_id: str
    result: AttestationResult
    tee_kind: str
    gpus: int
    expires: dt.datetime

    @property
    def qualifies(self) -> bool:
        return self.result.accepted


def node_binding(broker_id: bytes, node_id: str) -> Binding:
    """The binding a node agent's evidence carries: this broker, and a digest naming the node."""
    digest = hashlib.sha256(b"cchet/v1/node\x00" + node_id.encode()).digest()
    return Binding(broker_id, *DEFAULT_SUITE.ids, b"cchet/v1/node-agent", digest)


def _collect(nonce: bytes, binding: Binding) -> str:
    """Runs on the node (a plain Ray task): collect evidence. Returns it base64 (evidence is public)."""
    from cchet.runtime.worker import _attester

    return base64.b64encode(_attester().collect(nonce, binding).to_bytes()).decode()


class NodeRegistry:
    """Node id -> appraisal result, TEE kind, GPUs and expiry."""

    def __init__(self, broker_id: bytes, options: VerifyOptions, policy: Policy, audit: AuditLog | None = None) -> None:
        self._broker_id = broker_id
        self._audit = audit
        self._options = options
        self._policy = policy
        self._lock = threading.Lock()
        self._nodes: dict[str, NodeEntry] = {}
        self.failures: dict[str, str] = {}

    def attest_all(self, env: dict[str, str]) -> None:
        """Attest every alive Ray node through a node-agent task pinned to it."""
        import ray

        from cchet.attest.appraise import appraise

        agent = ray.remote(num_cpus=0, max_retries=0)(_collect)
        for node in ray.nodes():  # type: ignore[no-untyped-call]
            if not node.get("Alive"):
                continue
            node_id = node["NodeID"]
            nonce = os.urandom(32)
            binding = node_binding(self._broker_id, node_id)
            issued = self._options.now()
            ref = agent.options(
                label_selector={"ray.io/node-id": f"in({node_id})"}, runtime_env={"env_vars": env}
            ).remote(nonce, binding)
            try:
                wire = base64.b64decode(ray.get(ref, timeout=120))
            except Exception as e:  # a node that cannot attest is recorded as such, not trusted
                reason = f"the node agent could not collect evidence: {e}"
                self._record_failure(node_id, reason)
                self._log(node_id, None, [reason])
                continue
            result = appraise(
                wire,
                self._policy,
                nonce=nonce,
                binding=binding,
                options=self._options,
                nonce_issued_at=issued,
            )
            self._record(node_id, result)
            self._log(node_id, result, list(result.reasons))

    def _log(self, node_id: str, result: AttestationResult | None, reasons: list[str]) -> None:
        if self._audit is not None:
            self._audit.record(
                "appraisal",
                requester=f"node={node_id} (node agent)",
                evidence_digest=result.evidence_digest if result else None,
                policy_id=self._policy.policy_id,
                verdict="pass" if result is not None and result.accepted else "fail",
                reasons=reasons,
            )

    def _record(self, node_id: str, result: AttestationResult) -> None:
        kind = result.devices[0].kind if result.devices else "unknown"
        gpus = sum(1 for d in result.devices if d.device.startswith("gpu"))
        entry = NodeEntry(node_id, result, kind, gpus, result.appraised_at + dt.timedelta(seconds=ATTESTATION_TTL_S))
        with self._lock:
            self._nodes[node_id] = entry

    def _record_failure(self, node_id: str, reason: str) -> None:
        with self._lock:
            self._nodes.pop(node_id, None)
            self.failures[node_id] = reason

    def entries(self) -> list[NodeEntry]:
        with self._lock:
            return list(self._nodes.values())

    def qualifying(self, tee: str, gpu: str | None) -> list[str]:
        now = self._options.now()
        return [
            e.node_id
            for e in self.entries()
            if e.qualifies and e.expires > now and tee in ("any", e.tee_kind) and (gpu is None or e.gpus > 0)
        ]

    def describe(self) -> str:
        parts = []
        for e in self.entries():
            verdict = "accepted" if e.qualifies else "rejected: " + "; ".join(e.result.reasons)
            sim = ", SIMULATED" if e.result.simulated else ""
            parts.append(f"{e.node_id[:12]} ({e.tee_kind}, {e.gpus} GPU{sim}, {verdict})")
        return "; ".join(parts)
