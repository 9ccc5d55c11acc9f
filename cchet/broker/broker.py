"""The key broker: releases keys to workers whose fresh, bound evidence passes each key's policy.

The broker is the RATS relying party and verifier, run by the data owner. :meth:`KeyBroker.challenge` and
:meth:`KeyBroker.release` are the two protocol steps; transports (:mod:`cchet.broker.inprocess`,
:mod:`cchet.broker.http`) only carry their JSON.

Release, in order, collecting every reason before deciding: the nonce is consumed (first attempt only,
success or not); the suite and public key must decode; every key id must exist, be unexpired and admit the
function and data ids; unless every requested key is a ``cluster`` key (released to attested nodes joining a
hardened cluster), the request must carry the data owner's call ticket (:mod:`cchet.broker.tickets`), valid
under a job key held here, naming the request's function and every key id it asks for; the evidence must
verify and satisfy the policy of every requested key, including the report-data binding to this broker, nonce,
suite, worker key, request and GPU reports; the number of GPU reports must be what the request declared, and
the appraised evidence must meet the ticket's ``tee``/``gpu`` requirements. Any reason releases nothing. On
success one HPKE-sealed bundle holds the granted keys, the whole response is signed (with what was appraised:
TEE kind and GPUs), and the audit log has a record of every step.

Limits: a request's self-declared fields are bounded when it is parsed (:mod:`cchet.broker.messages`); what
the broker writes back of them goes through :func:`~cchet.broker.messages.echo`; a refusal lists at most
:data:`MAX_REASONS` reasons; at most :data:`~cchet.broker.nonces.MAX_OUTSTANDING` challenges are outstanding
(past it a challenge gets :class:`~cchet.BrokerBusy`). So a refused request adds a bounded amount to the audit
log, whatever its size.

Every policy the broker holds requires the report-data binding: one with ``require_binding = false`` (meant for
checking standalone evidence with ``cchet verify``) is refused as the default, when registered, with a key, and
when found in the state directory, since without the binding a copy of anyone's evidence would do.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cchet.attest.binding import Binding, broker_id_for, compute_report_data
from cchet.broker.audit import AuditLog
from cchet.broker.durable import replace_file
from cchet.broker.hpke import seal_to, suite_by_ids
from cchet.broker.keystore import KeyScope, KeyStore, StoredKey
from cchet.broker.master import MasterKey
from cchet.broker.messages import (
    KeyRequest,
    ProtocolError,
    as_object,
    b64d,
    b64e,
    canonical_json,
    echo,
    sign_body,
)
from cchet.broker.nonces import NonceRegistry
from cchet.broker.tickets import CallTicket, TicketError, unmet_requirements, verify_ticket
from cchet.broker.tokens import issue_token
from cchet.hazmat.keys import DataKey, data_key_bytes

__all__ = ["Appraisal", "Appraiser", "KeyBroker", "bundle_info"]

log = logging.getLogger("cchet.broker")

KEY_LEASE_S = 3600.0
BUNDLE_LABEL = b"cchet/v1/bundle\x00"
MAX_REASONS = 64
"""Reasons a refusal lists (in its answer and its audit records); past it the last one counts the rest."""


def bundle_info(report_data: bytes) -> bytes:
    """HPKE ``info`` for the key bundle: binds it to the transcript hash (the 64-byte report data)."""
    return BUNDLE_LABEL + report_data


@dataclass(frozen=True)
class Appraisal:
    """What an appraiser concluded about one piece of evidence under one policy: ``tee_kind`` is the CPU TEE
    the evidence proved, ``gpus`` how many GPU reports it held, ``gpus_affirmed`` whether every one of them
    passed, ``warnings`` what an accepting policy let through only because it opted out of a default
    (``measurements="any"``, ``gpu_measurements="unchecked"``, ``gpu_allow_devtools``), and
    ``gpu_identities`` the SHA-256 of the attestation certificate of each GPU whose report passed."""

    reasons: tuple[str, ...]
    simulated: bool
    evidence_digest: str
    gpu_transcripts: tuple[tuple[int, bytes, bytes], ...] = ()
    claims: Mapping[str, Any] = field(default_factory=dict)
    tee_kind: str = ""
    gpus: int = 0
    gpus_affirmed: bool = False
    warnings: tuple[str, ...] = ()
    gpu_identities: tuple[str, ...] = ()


class Appraiser(Protocol):
    """Parse and verify wire evidence once, then appraise it against each of ``policies`` (with the binding the
    broker expects): one :class:`Appraisal` per policy, in order."""

    def __call__(
        self, evidence: object, policies: Sequence[Any], *, nonce: bytes, binding: Binding, nonce_age_s: float
    ) -> tuple[Appraisal, ...]: ...


def _policy_id(policy: Any) -> str:
    return str(getattr(policy, "policy_id", "unnamed"))


def _releasable(policy: Any, where: str = "") -> Any:
    """``policy``, once it is one the broker may release keys under; ``ValueError`` saying why not."""
    if not policy.require_binding:
        raise ValueError(
            f"policy {_policy_id(policy)}{where} sets require_binding = false, which the key broker refuses: "
            "evidence not bound to this broker's nonce and the worker's key can be replayed by anyone holding "
            "a copy of it (a public quote is enough). The flag exists only for checking standalone evidence "
            "with 'cchet verify'; remove it from the policy"
        )
    return policy


class KeyBroker:
    """Holds the data owner's keys and releases them to attested workers.

    ``state_dir`` (optional) makes the broker durable: its master key, identity and key store survive
    restarts. ``audit_log`` is a path for the MAC-chained audit log (its key derives from the master key).
    ``appraiser`` parses, verifies and appraises evidence (see :mod:`cchet.broker.appraisal`).
    ``default_policy`` and every policy registered later must require the binding (``ValueError`` if not).
    """

    def __init__(
        self,
        *,
        appraiser: Appraiser,
        default_policy: Any,
        state_dir: str | Path | None = None,
        audit_log: str | Path | None = None,
        master_key: MasterKey | None = None,
        clock: Callable[[], float] = time.time,
        issuer: str = "cchet-broker",
        before_rename: Callable[[], None] | None = None,
    ) -> None:
        _releasable(default_policy)
        self._appraise = appraiser
        self._clock = clock
        if state_dir is not None:
            master, created = MasterKey.load_or_create(state_dir)
            self.master_created = created
        else:
            master, self.master_created = master_key or MasterKey.generate(), master_key is None
        self._master = master
        self._identity = master.identity_key()
        self.broker_id = broker_id_for(self._identity.public_key())
        self.issuer = issuer
        self.keys = KeyStore(
            master.derive_data_key("keystore") if state_dir is not None else None,
            Path(state_dir) if state_dir is not None else None,
            clock=clock,
            before_rename=before_rename,
        )
        self.audit = None if audit_log is None else AuditLog(audit_log, master.derive("audit"), clock=clock)
        self.nonces = NonceRegistry()
        self.state_dir = None if state_dir is None else Path(state_dir)
        self._policy_dir = None if state_dir is None else Path(state_dir) / "policies"
        self._policies: dict[str, Any] = self._load_policies()
        self.default_policy = default_policy
        self.register_policy(default_policy)

    @property
    def master_fingerprint(self) -> str:
        return self._master.fingerprint

    @property
    def audit_mac_key(self) -> bytes:
        return self._master.derive("audit")

    def public_key(self) -> Any:
        return self._identity.public_key()

    def _load_policies(self) -> dict[str, Any]:
        from cchet.attest.policy import Policy

        if self._policy_dir is None or not self._policy_dir.is_dir():
            return {}
        policies = {}
        for path in sorted(self._policy_dir.glob("*.json")):
            policy = _releasable(Policy.from_dict(json.loads(path.read_text())), f" (in {path})")
            policies[_policy_id(policy)] = policy
        return policies

    def register_policy(self, policy: Any) -> str:
        """Make ``policy`` known under its policy id (persisted with a state directory). ``ValueError`` for a
        policy that does not require the binding."""
        pid = _policy_id(_releasable(policy))
        if pid not in self._policies and self._policy_dir is not None:
            self._policy_dir.mkdir(mode=0o700, exist_ok=True)
            name = hashlib.sha256(pid.encode()).hexdigest()[:32] + ".json"
            replace_file(self._policy_dir / name, json.dumps(policy.to_dict(), sort_keys=True).encode())
        self._policies[pid] = policy
        return pid

    def policy(self, policy_id: str) -> Any:
        return self._policies[policy_id]

    def add_key(
        self,
        key: DataKey | None = None,
        *,
        policy: Any = None,
        scope: KeyScope | None = None,
        kind: str = "data",
        expires: float | None = None,
    ) -> DataKey:
        """Store a key (a new one when ``key`` is None) under ``policy`` (the default when None); durable
        before it returns. Returns the key handle, for the data owner to seal with. ``ValueError`` for a policy
        that does not require the binding."""
        key = key or DataKey.generate()
        pid = self.register_policy(policy if policy is not None else self.default_policy)
        self.keys.add(key, policy_id=pid, scope=scope, kind=kind, expires=expires)
        return key

    def retire_key(self, key_id: bytes, why: str) -> None:
        """Retire ``key_id`` durably (it is released to no one again) and record it, with ``why``, in the audit
        log. ``KeyError`` for a key this broker does not hold."""
        self.keys.retire(key_id)
        self._record("rotation", requester="data owner", verdict="retired", reasons=[why], key_ids=[key_id])

    def _record(self, event: str, **kw: Any) -> None:
        if self.audit is not None:
            self.audit.record(event, **kw)

    # -- protocol step 1 -------------------------------------------------------------------------------

    def challenge(self, message: object) -> dict[str, Any]:
        """Answer a key request with a signed, single-use nonce tied to its digest.

        Raises :class:`~cchet.ProtocolError` for a malformed or oversized request and
        :class:`~cchet.BrokerBusy` when the nonce table is full; neither is recorded in the audit log.
        """
        request = KeyRequest.from_json(as_object(message, "message").get("request"))
        digest = request.digest(self.broker_id)
        nonce = self.nonces.issue(digest)
        self._record("challenge", requester=_requester(request), key_ids=request.key_ids)
        body = {"request_digest": b64e(digest), "nonce": b64e(nonce), "broker_id": b64e(self.broker_id)}
        return sign_body(self._identity, "challenge", body)

    # -- protocol step 2 -------------------------------------------------------------------------------

    def release(self, message: object) -> dict[str, Any]:
        """Appraise an attestation and answer with a signed bundle of keys, or every reason for refusal."""
        m = as_object(message, "message")
        request = KeyRequest.from_json(m.get("request"))
        nonce = b64d(m.get("nonce"), "nonce", size=32)
        suite_ids = m.get("suite")
        if not (isinstance(suite_ids, list) and len(suite_ids) == 3 and all(type(i) is int for i in suite_ids)):
            raise ProtocolError("suite must be [kem_id, kdf_id, aead_id]")
        public_key = b64d(m.get("public_key"), "public_key", max_size=0xFFFF)
        evidence = m.get("evidence")
        digest = request.digest(self.broker_id)
        reasons, nonce_age = self.nonces.consume(nonce, digest)
        try:
            suite = suite_by_ids(*suite_ids)
            suite.public_key_from_bytes(public_key)
        except ValueError as e:
            reasons.append(str(e))
            suite = None
        entries = self._entries(request, reasons)
        ticket = self._ticket(request, entries, reasons)
        appraisal: Appraisal | None = None
        warnings: list[str] = []
        binding = None
        if suite is not None:
            binding = Binding(self.broker_id, *suite.ids, public_key, digest)
            policy_ids = sorted({e.policy_id for e in entries}) or [_policy_id(self.default_policy)]
            results = self._appraise(
                evidence,
                [self._policies[pid] for pid in policy_ids],
                nonce=nonce,
                binding=binding,
                nonce_age_s=nonce_age,
            )
            appraisal = results[0]
            for pid, result in zip(policy_ids, results, strict=True):
                reasons += [f"policy {pid}: {r}" for r in result.reasons]
                warnings += [f"policy {pid}: warning: {w}" for w in result.warnings]
            if appraisal is not None and len(appraisal.gpu_transcripts) != request.gpus:
                reasons.append(
                    f"the request declared {request.gpus} GPU(s) but the evidence holds "
                    f"{len(appraisal.gpu_transcripts)}"
                )
            if appraisal is not None and ticket is not None:
                reasons += unmet_requirements(
                    ticket.tee,
                    ticket.gpu,
                    tee_kind=appraisal.tee_kind,
                    gpus=appraisal.gpus,
                    gpus_affirmed=appraisal.gpus_affirmed,
                    gpu_identity=request.gpu_identity,
                    gpu_identities=appraisal.gpu_identities,
                )
        reasons = _capped(reasons)
        requester = _requester(request, ticket)
        evidence_digest = appraisal.evidence_digest if appraisal else None
        self._record(
            "appraisal",
            requester=requester,
            evidence_digest=evidence_digest,
            policy_id=",".join(sorted({e.policy_id for e in entries})) or None,
            verdict="fail" if reasons else "pass",
            reasons=reasons,
            key_ids=request.key_ids,
        )
        if reasons or appraisal is None or suite is None or binding is None:
            reasons = reasons or ["evidence could not be appraised"]
            self._record(
                "refusal",
                requester=requester,
                evidence_digest=evidence_digest,
                reasons=reasons,
                key_ids=request.key_ids,
            )
            return sign_body(
                self._identity,
                "response",
                {"verdict": "denied", "reasons": reasons, "request_digest": b64e(digest)},
            )
        report_data = compute_report_data(binding, nonce, appraisal.gpu_transcripts)
        expires = self._clock() + KEY_LEASE_S
        bundle_keys: dict[bytes, dict[str, Any]] = {}
        for entry in entries:
            sealing = entry if entry.kind == "stream" else self.keys.reserve(entry.key_id)
            bundle_keys[entry.key_id] = _bundle_entry(entry, sealing.key_id)
            if sealing.key_id != entry.key_id:
                bundle_keys[sealing.key_id] = _bundle_entry(sealing, sealing.key_id)
        bundle = {"keys": list(bundle_keys.values()), "expires": expires, "transcript": report_data.hex()}
        sealed = seal_to(suite, public_key, canonical_json(bundle), bundle_info(report_data))
        token = issue_token(
            self._identity,
            issuer=self.issuer,
            audience="cchet-worker",
            subject=requester,
            worker_public_key=public_key,
            policy_digest=",".join(sorted({e.policy_id for e in entries})),
            evidence_digest=appraisal.evidence_digest,
            key_ids=request.key_ids,
            simulated=appraisal.simulated,
            clock=self._clock,
        )
        for warning in warnings:
            log.warning("cchet broker: released keys to %s with an opted-out check: %s", requester, warning)
        self._record(
            "release",
            requester=requester,
            evidence_digest=evidence_digest,
            policy_id=",".join(sorted({e.policy_id for e in entries})),
            verdict="released",
            reasons=_capped(warnings),
            key_ids=bundle_keys,
        )
        body = {
            "verdict": "released",
            "bundle": b64e(sealed),
            "token": token,
            "transcript": report_data.hex(),
            "request_digest": b64e(digest),
            "simulated": appraisal.simulated,
            "appraised": {
                "tee": appraisal.tee_kind,
                "gpus": appraisal.gpus,
                "gpus_affirmed": appraisal.gpus_affirmed,
                "gpu_identities": list(appraisal.gpu_identities),
            },
        }
        return sign_body(self._identity, "response", body)

    def _ticket(self, request: KeyRequest, entries: list[StoredKey], reasons: list[str]) -> CallTicket | None:
        """The request's call ticket once it verifies and covers the request; None (with the reasons) when it
        is missing or bad, or when the request asks only for ``cluster`` keys (which need none)."""
        if entries and all(e.kind == "cluster" for e in entries) and not request.ticket:
            return None
        if not request.ticket:
            reasons.append(
                "the request carries no call ticket: keys are released only for calls the data owner made "
                "(@cchet.remote in its session), not to any process on an attested node"
            )
            return None
        try:
            ticket = CallTicket.from_bytes(request.ticket)
            signer = self.keys.get(ticket.signer)
            if signer is None or signer.kind != "job":
                raise TicketError(f"the ticket's signer {ticket.signer.hex()} is not a job key held by this broker")
            if signer.expires is not None and signer.expires < self._clock():
                raise TicketError(f"the ticket's signer {ticket.signer.hex()} (a job key) has expired")
            verify_ticket(ticket, signer.key, now=self._clock())
        except TicketError as e:
            reasons.append(f"call ticket: {e}")
            return None
        if ticket.function.hex() != request.function:
            reasons.append("call ticket: it authorises another function than the request names")
        outside = sorted(k.hex() for k in set(request.key_ids) - set(ticket.key_ids))
        if outside:
            reasons.append(f"call ticket: key id(s) {', '.join(outside)} are not among those it authorises")
        return ticket

    def _entries(self, request: KeyRequest, reasons: list[str]) -> list[StoredKey]:
        entries = []
        now = self._clock()
        for key_id in request.key_ids:
            entry = self.keys.get(key_id)
            if entry is None:
                reasons.append(f"unknown key id {key_id.hex()}")
                continue
            if entry.retired is not None:
                when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.retired))
                reasons.append(f"key {key_id.hex()} was retired at {when} and is released to no one")
            if entry.expires is not None and entry.expires < now:
                reasons.append(f"key {key_id.hex()} expired")
            reasons += [f"key {key_id.hex()}: {r}" for r in entry.scope.refusals([request.function], request.data_ids)]
            entries.append(entry)
        return entries


def _capped(reasons: list[str]) -> list[str]:
    if len(reasons) <= MAX_REASONS:
        return reasons
    return [*reasons[: MAX_REASONS - 1], f"... and {len(reasons) - MAX_REASONS + 1} more reasons (MAX_REASONS)"]


def _requester(request: KeyRequest, ticket: CallTicket | None = None) -> str:
    """Who asked, for the audit log and the token's subject; the self-declared fields are echoed, bounded."""
    out = f"node={echo(request.node_id)} tee={request.tee_kind} function={echo(request.function)}"
    if ticket is not None:
        out += f" session={ticket.session_id.hex()}"
        if ticket.unhardened:
            out += " (unhardened multi-node cluster: allowed by the data owner with allow_unhardened=True)"
    return out


def _bundle_entry(entry: StoredKey, seal_with: bytes) -> dict[str, Any]:
    return {
        "key_id": entry.key_id.hex(),
        "key": b64e(data_key_bytes(entry.key)),
        "kind": entry.kind,
        "scope": entry.scope.to_json(),
        "seal_with": seal_with.hex(),
    }
