"""The registry of attested nodes that placement trusts.

Each node proves itself with composite evidence collected by a node-agent task pinned to it, bound to a fresh
nonce and to this broker; the driver reads the agent's answer as raw bytes (a node is not trusted before its
evidence passes: an answer Ray stored with any metadata but ``RAW`` is refused unread), appraises it against
the session policy, and records the appraisal in the broker's audit log. The agent's answer also carries the
node's proof that it holds the hardened cluster's credentials (:func:`cchet.runtime.node.join_proof`, bound
into the evidence): a node counts as hardened only when that proof checks. The registry keeps node id ->
result, TEE kind, GPUs and CC state, hardened or not, and expiry; :meth:`NodeRegistry.refresh` attests nodes
that joined, re-attests those whose result is about to expire, and drops nodes that died. Labels and resources a node
declares at ``ray start`` are never used: only appraised evidence qualifies a node.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cchet.attest.binding import Binding
from cchet.attest.policy import Policy
from cchet.attest.result import AttestationResult
from cchet.attest.verify.options import VerifyOptions
from cchet.broker.audit import AuditLog
from cchet.broker.hpke import DEFAULT_SUITE
from cchet.errors import CchetError, RayFailure
from cchet.runtime import metrics

__all__ = ["NodeEntry", "NodeRegistry", "node_binding"]

log = logging.getLogger("cchet.runtime")

ATTESTATION_TTL_S = 3600.0
REATTEST_MARGIN = 0.1  # re-attest when less than this fraction of the lifetime is left
AGENT_TIMEOUT_S = 120.0
MAX_EVIDENCE_BYTES = 16 << 20


@dataclass(frozen=True)
class NodeEntry:
    """One node's latest appraisal."""

    node_id: str
    result: AttestationResult
    tee_kind: str
    gpus: int
    cc: bool
    expires: dt.datetime
    hardened: bool = False

    @property
    def qualifies(self) -> bool:
        return self.result.accepted

    def row(self) -> dict[str, Any]:
        return {
            "node": self.node_id,
            "tee": self.tee_kind,
            "gpus": self.gpus,
            "cc": "on" if self.cc else ("-" if not self.gpus else "off"),
            "verdict": "accepted" if self.qualifies else "rejected",
            "simulated": self.result.simulated,
            "expires": self.expires.isoformat(timespec="seconds"),
            "hardened": self.hardened,
            "reasons": list(self.result.reasons),
        }


def node_binding(broker_id: bytes, node_id: str, join_proof: bytes = b"") -> Binding:
    """The binding a node agent's evidence carries: this broker, and a digest naming the node and its proof of
    holding the cluster credentials (empty outside hardened mode)."""
    digest = hashlib.sha256(b"cchet/v1/node\x00" + node_id.encode() + b"\x00" + join_proof).digest()
    return Binding(broker_id, *DEFAULT_SUITE.ids, b"cchet/v1/node-agent", digest)


AGENT_FAULT = b"\x00cchet/v1/agent-fault\x00"  # then UTF-8 text: why the node could not collect evidence


def _collect(nonce: bytes, broker_id: bytes, node_id: str) -> bytes:
    """Runs on the node (a plain Ray task): the join proof's length (2 bytes, big-endian), the proof and the
    evidence bound to both (public), as raw bytes; or, when the node cannot, :data:`AGENT_FAULT` and the reason
    (an exception would reach the driver pickled)."""
    import ray

    from cchet.runtime.environment import node_attester
    from cchet.runtime.node import join_proof

    try:
        here = ray.get_runtime_context().get_node_id()
        if here != node_id:
            return AGENT_FAULT + f"asked to attest node {node_id}, but runs on node {here}".encode()
        proof = join_proof(nonce, node_id)
        evidence = node_attester().collect(nonce, node_binding(broker_id, node_id, proof)).to_bytes()
        return len(proof).to_bytes(2, "big") + proof + bytes(evidence)
    except Exception as e:
        return AGENT_FAULT + f"{type(e).__name__}: {e}".encode()[:4096]


def _answer(ref: Any) -> tuple[bytes, bytes]:
    """The agent's answer -- its join proof and evidence -- read without deserializing it: raw bytes of bounded
    size, or ``ValueError``."""
    from cchet.runtime.node import MAX_PROOF_BYTES
    from cchet.runtime.raystore import raw_bytes, read_raw

    raw = read_raw([ref], timeout=AGENT_TIMEOUT_S)[0]
    try:
        data = raw_bytes(raw, "the node agent's answer")
    except RayFailure as e:
        raise ValueError(f"the node agent failed: {e}") from None
    except CchetError:
        shown = raw.metadata[:32].decode("ascii", "replace")
        raise ValueError(
            f"the node agent's answer is not raw evidence bytes (Ray stored it with metadata {shown!r}): refused unread"
        ) from None
    if len(data) > MAX_EVIDENCE_BYTES:
        raise ValueError(f"the node agent's answer is larger than {MAX_EVIDENCE_BYTES} bytes")
    if bytes(data[: len(AGENT_FAULT)]) == AGENT_FAULT:
        text = bytes(data[len(AGENT_FAULT) :]).decode("utf-8", "replace")
        raise ValueError(f"the node agent could not collect evidence: {text}")
    size = int.from_bytes(data[:2], "big") if len(data) >= 2 else -1
    if not 0 <= size <= MAX_PROOF_BYTES or len(data) < 2 + size:
        raise ValueError("the node agent's answer is not a join proof and evidence")
    return bytes(data[2 : 2 + size]), bytes(data[2 + size :])


class NodeRegistry:
    """Node id -> appraisal result, TEE kind, GPUs, CC state and expiry; thread-safe."""

    def __init__(
        self,
        broker_id: bytes,
        options: VerifyOptions,
        policy: Policy,
        audit: AuditLog | None = None,
        *,
        ttl_s: float = ATTESTATION_TTL_S,
    ) -> None:
        self._broker_id = broker_id
        self._audit = audit
        self._options = options
        self._policy = policy
        self._ttl = dt.timedelta(seconds=ttl_s)
        self._lock = threading.Lock()
        self._nodes: dict[str, NodeEntry] = {}
        self.failures: dict[str, str] = {}
        self.node_count = 0  # alive Ray nodes at the last look, attested or not
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- attesting ------------------------------------------------------------------------------------

    def attest(self, node_ids: list[str], env: Mapping[str, str]) -> None:
        """Attest ``node_ids`` in parallel through node-agent tasks pinned to each; record every result."""
        import ray

        from cchet.attest.appraise import appraise
        from cchet.runtime.node import cluster_certificate, holds_cluster_credentials

        agent = ray.remote(num_cpus=0, max_retries=0)(_collect)
        certificate = cluster_certificate()
        pending = []
        for node_id in node_ids:
            nonce = os.urandom(32)
            ref = agent.options(
                label_selector={"ray.io/node-id": f"in({node_id})"}, runtime_env={"env_vars": dict(env)}
            ).remote(nonce, self._broker_id, node_id)
            pending.append((node_id, nonce, self._options.now(), ref))
        for node_id, nonce, issued, ref in pending:
            try:
                proof, wire = _answer(ref)
            except ValueError as e:  # a node whose answer is not evidence is recorded as such, never trusted
                reason = str(e)
                self._forget(node_id, reason)
                self._log(node_id, None, [reason])
                continue
            except Exception as e:  # a node that cannot attest is recorded as such, never trusted
                reason = f"the node agent could not collect evidence: {type(e).__name__}: {e}"
                self._forget(node_id, reason)
                self._log(node_id, None, [reason])
                continue
            binding = node_binding(self._broker_id, node_id, proof)
            result = appraise(
                wire, self._policy, nonce=nonce, binding=binding, options=self._options, nonce_issued_at=issued
            )
            self._record(node_id, result, holds_cluster_credentials(proof, nonce, node_id, certificate))
            self._log(node_id, result, list(result.reasons))

    def attest_all(self, env: Mapping[str, str]) -> None:
        """Attest every alive Ray node."""
        alive = _alive_nodes()
        self.node_count = len(alive)
        self.attest(alive, env)

    def refresh(self, env: Mapping[str, str]) -> None:
        """Attest nodes that joined, re-attest results near expiry, and drop nodes that died."""
        alive = _alive_nodes()
        self.node_count = len(alive)
        now = self._options.now()
        with self._lock:
            for node_id in [n for n in self._nodes if n not in alive]:
                del self._nodes[node_id]
                self.failures[node_id] = "the node died or left the cluster"
            # a node that could not attest is not asked again every round; Ray never reuses a dead node's id
            due = [
                n
                for n in alive
                if n not in self.failures
                and (n not in self._nodes or self._nodes[n].expires - now < self._ttl * REATTEST_MARGIN)
            ]
        if due:
            self.attest(due, env)

    def start_refreshing(self, env: Mapping[str, str], interval_s: float = 5.0) -> None:
        """Refresh in a daemon thread every ``interval_s`` until :meth:`stop`."""

        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.refresh(env)
                except Exception:  # the cluster went away while refreshing; the next round tries again
                    log.warning("cchet: refreshing the node registry failed; retrying", exc_info=True)

        self._thread = threading.Thread(target=loop, name="cchet-registry", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _record(self, node_id: str, result: AttestationResult, hardened: bool) -> None:
        cpu = result.devices[0] if result.devices else None
        gpus = [d for d in result.devices if d.device.startswith("gpu")]
        entry = NodeEntry(
            node_id,
            result,
            cpu.kind if cpu else "unknown",
            len(gpus),
            bool(gpus) and all(d.status == "affirming" for d in gpus),
            result.appraised_at + self._ttl,
            hardened and result.accepted,
        )
        with self._lock:
            self._nodes[node_id] = entry
            self.failures.pop(node_id, None)

    def _forget(self, node_id: str, reason: str) -> None:
        with self._lock:
            self._nodes.pop(node_id, None)
            self.failures[node_id] = reason

    def _log(self, node_id: str, result: AttestationResult | None, reasons: list[str]) -> None:
        metrics.attestation(result is not None and result.accepted)
        if self._audit is not None:
            self._audit.record(
                "appraisal",
                requester=f"node={node_id} (node agent)",
                evidence_digest=result.evidence_digest if result else None,
                policy_id=self._policy.policy_id,
                verdict="pass" if result is not None and result.accepted else "fail",
                reasons=reasons,
            )

    # -- reading --------------------------------------------------------------------------------------

    def entries(self) -> list[NodeEntry]:
        with self._lock:
            return list(self._nodes.values())

    def hardened(self) -> bool:
        """True when every alive node passed attestation and proved it holds the hardened cluster's
        credentials (so it joined through ``cchet start``): the only way a cluster counts as hardened."""
        entries = self.entries()  # alive nodes that attested; node_count counts every alive node
        return bool(entries) and len(entries) >= self.node_count and all(e.hardened for e in entries)

    def qualifying(self, tee: str, gpu: str | None) -> list[str]:
        """Ids of nodes whose unexpired result was accepted and that have the TEE kind and GPUs asked for."""
        now = self._options.now()
        return [
            e.node_id
            for e in self.entries()
            if e.qualifies and e.expires > now and tee in ("any", e.tee_kind) and (gpu is None or (e.gpus and e.cc))
        ]

    def describe(self) -> str:
        parts = []
        for e in self.entries():
            verdict = "accepted" if e.qualifies else "rejected: " + "; ".join(e.result.reasons)
            sim = ", SIMULATED" if e.result.simulated else ""
            parts.append(f"{e.node_id[:12]} ({e.tee_kind}, {e.gpus} GPU{sim}, {verdict})")
        parts += [f"{n[:12]} (not attested: {why})" for n, why in sorted(self.failures.items())]
        return "; ".join(parts)

    def rows(self) -> list[dict[str, Any]]:
        """Every node as a row: attested ones, then those that could not attest (verdict ``unattested``)."""
        rows = [e.row() for e in sorted(self.entries(), key=lambda e: e.node_id)]
        with self._lock:
            failures = sorted(self.failures.items())
        rows += [
            {
                "node": n,
                "tee": "-",
                "gpus": 0,
                "cc": "-",
                "verdict": "unattested",
                "simulated": False,
                "expires": "-",
                "hardened": False,
                "reasons": [why],
            }
            for n, why in failures
        ]
        return rows

    def write_status(self, path: Path, *, hardened: bool) -> None:
        """Publish the registry for ``cchet status`` (atomic replace, mode 0600)."""
        from cchet.broker.durable import replace_file

        doc = {"hardened": hardened, "policy_id": self._policy.policy_id, "nodes": self.rows()}
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, json.dumps(doc, indent=1).encode())

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in ("node", "TEE", "GPUs", "CC", "verdict", "expires"))
        body = []
        for r in self.rows():
            verdict = r["verdict"] + (" (SIMULATED)" if r["simulated"] else "")
            cells = (r["node"][:12], r["tee"], r["gpus"], r["cc"], verdict, r["expires"])
            title = html.escape("; ".join(r["reasons"]))
            body.append(
                "<tr title='" + title + "'>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>"
            )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _alive_nodes() -> list[str]:
    import ray

    return [n["NodeID"] for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
