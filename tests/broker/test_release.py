"""Key release end to end on simulated evidence: every grant, and every refusal with its reason and record."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cchet import BrokerError, KeyReleaseDenied
from cchet.attest import Binding, Policy
from cchet.attest.simulate.attester import SimulatedAttester
from cchet.attest.simulate.authority import SimulatedAuthority
from cchet.attest.simulate.dcap import default_measurement
from cchet.broker.audit import verify_audit_log
from cchet.broker.broker import KeyBroker
from cchet.broker.client import BrokerClient
from cchet.broker.hpke import DEFAULT_SUITE, SUITES, HpkeKeyPair
from cchet.broker.keystore import KeyScope
from cchet.broker.messages import KeyRequest, b64e, open_signed
from cchet.broker.nonces import NonceRegistry
from cchet.broker.tickets import issue_ticket
from cchet.broker.transport import InProcessTransport
from cchet.hazmat import data_key_bytes
from tests.broker.owner import OwnedClient, Owner, function_id


def _audit(broker: KeyBroker) -> list[dict[str, Any]]:
    assert broker.audit is not None
    return [json.loads(line) for line in broker.audit.path.read_text().splitlines()]


@pytest.mark.parametrize("kind", ["tdx", "snp", "sgx", "tdx+gpu", "snp+2gpu"])
def test_release_on_simulated_evidence(
    kind: str, make_broker: Callable[..., KeyBroker], make_client: Callable[..., OwnedClient]
) -> None:
    broker = make_broker()
    key = broker.add_key()
    client = make_client(broker, kind)
    released = client.keys([key.key_id], function="pkg.f")
    assert released[key.key_id] == key and released.simulated
    assert released.sealing_key(key.key_id) == key
    events = [r["event"] for r in _audit(broker)]
    assert events == ["challenge", "appraisal", "release"]
    text = broker.audit.path.read_text()  # type: ignore[union-attr]
    assert data_key_bytes(key).hex() not in text and base64.b64encode(data_key_bytes(key)).decode() not in text
    assert verify_audit_log(broker.audit.path, broker.audit_mac_key).ok  # type: ignore[union-attr]


def test_cached_release_attests_once(
    make_broker: Callable[..., KeyBroker], make_client: Callable[..., OwnedClient]
) -> None:
    broker = make_broker()
    key = broker.add_key()
    client = make_client(broker)
    a = client.keys([key.key_id], function="f")
    b = client.keys([key.key_id], function="f")
    assert a is b and client.attestations == 1
    client.keys([key.key_id], function="g")
    assert client.attestations == 2, "another function is another release"


def test_x25519_suite(make_broker: Callable[..., KeyBroker], authority: SimulatedAuthority) -> None:
    broker = make_broker()
    key = broker.add_key()
    client = BrokerClient(
        InProcessTransport(broker),
        broker_id=broker.broker_id,
        attester=SimulatedAttester.for_kind("tdx", str(authority.key_dir)),
        node_id="n",
        suite=SUITES["X25519"],
    )
    assert OwnedClient(client, Owner(broker)).keys([key.key_id], function="f")[key.key_id] == key


def _denied(
    broker: KeyBroker,
    client: OwnedClient,
    key_ids: list[bytes],
    function: str = "f",
    data_ids: tuple[str, ...] = (),
) -> tuple[str, ...]:
    with pytest.raises(KeyReleaseDenied) as info:
        client.keys(key_ids, function=function, data_ids=data_ids)
    records = _audit(broker)
    assert records[-1]["event"] == "refusal" and records[-1]["reasons"] == list(info.value.reasons)
    assert [r["event"] for r in records[-3:]] == ["challenge", "appraisal", "refusal"], "nothing released"
    return info.value.reasons


def _pinned(**kw: Any) -> Policy:
    return Policy(name="strict", mrtd=(default_measurement("MRTD").hex(),), **kw)


@pytest.mark.parametrize(
    ("policy", "attester", "tcb", "expect"),
    [
        (Policy(name="p", allow_simulation=True, mrtd=("00" * 48,)), {}, "UpToDate", "policy.mrtd"),
        (Policy(name="p"), {}, "UpToDate", "policy.measurements"),
        (_pinned(allow_simulation=True), {"cpu": {"debug": True}}, "UpToDate", "policy.allow_debug"),
        (_pinned(allow_simulation=True), {}, "OutOfDate", "policy.min_tcb_status"),
        (_pinned(), {}, "UpToDate", "policy.allow_simulation"),
    ],
    ids=["wrong-measurement", "unpinned-policy", "debug", "tcb-below-policy", "simulated-under-strict"],
)
def test_policy_refusals(
    policy: Policy,
    attester: dict[str, Any],
    tcb: str,
    expect: str,
    make_broker: Callable[..., KeyBroker],
    make_client: Callable[..., OwnedClient],
) -> None:
    broker = make_broker(policy, tcb_status=tcb)
    key = broker.add_key()
    reasons = _denied(broker, make_client(broker, **attester), [key.key_id])
    assert any(expect in r for r in reasons), reasons


def test_scoped_key_refuses_another_function(
    make_broker: Callable[..., KeyBroker], make_client: Callable[..., OwnedClient]
) -> None:
    broker = make_broker()
    key = broker.add_key(scope=KeyScope(frozenset({function_id("pkg.allowed").hex()}), frozenset({"ds-1"})))
    client = make_client(broker)
    assert client.keys([key.key_id], function="pkg.allowed", data_ids=["ds-1"])[key.key_id] == key
    reasons = _denied(broker, client, [key.key_id], function="pkg.other", data_ids=("ds-1",))
    assert any(f"function '{function_id('pkg.other').hex()}' is outside" in r for r in reasons)
    reasons = _denied(broker, client, [key.key_id], function="pkg.allowed", data_ids=("ds-2",))
    assert any("data id 'ds-2' is outside" in r for r in reasons)


def test_unknown_key_id(make_broker: Callable[..., KeyBroker], make_client: Callable[..., OwnedClient]) -> None:
    broker = make_broker()
    known = broker.add_key()
    unknown = bytes([7]) * 16
    reasons = _denied(broker, make_client(broker), [known.key_id, unknown])
    assert reasons == (f"unknown key id {unknown.hex()}",)


class Manual:
    """Drives the protocol by hand so that tests can bend one thing at a time."""

    def __init__(self, broker: KeyBroker, authority: SimulatedAuthority, kind: str = "tdx") -> None:
        self.broker = broker
        self.attester = SimulatedAttester.for_kind(kind, str(authority.key_dir))
        self.key = broker.add_key()
        self.owner = Owner(broker)

    def request(self, function: str = "f") -> KeyRequest:
        return KeyRequest(
            "node-1",
            self.attester.tee_kind,
            function_id(function).hex(),
            (self.key.key_id,),
            gpus=self.attester.gpu_count,
            ticket=self.owner.ticket(function, [self.key.key_id]),
        )

    def challenge(self, request: KeyRequest) -> bytes:
        body = open_signed(self.broker.challenge({"request": request.to_json()}), "challenge", self.broker.broker_id)
        return base64.b64decode(body["nonce"])

    def attest(
        self,
        request: KeyRequest,
        nonce: bytes,
        *,
        binding: Binding | None = None,
        evidence_nonce: bytes | None = None,
        pair: HpkeKeyPair | None = None,
    ) -> dict[str, Any]:
        pair = pair or HpkeKeyPair(DEFAULT_SUITE)
        binding = binding or Binding(
            self.broker.broker_id,
            *DEFAULT_SUITE.ids,
            pair.public_bytes,
            request.digest(self.broker.broker_id),
        )
        evidence = self.attester.collect(evidence_nonce or nonce, binding)
        message = {
            "request": request.to_json(),
            "nonce": b64e(nonce),
            "suite": list(DEFAULT_SUITE.ids),
            "public_key": b64e(pair.public_bytes),
            "evidence": b64e(evidence.to_bytes()),
        }
        return open_signed(self.broker.release(message), "response", self.broker.broker_id)


def _refused(body: dict[str, Any], words: str) -> None:
    assert body["verdict"] == "denied", body
    assert "bundle" not in body and "token" not in body, "a refusal carries no ciphertext"
    assert any(words in r for r in body["reasons"]), body["reasons"]


def test_nonce_is_single_use(make_broker: Callable[..., KeyBroker], authority: SimulatedAuthority) -> None:
    m = Manual(make_broker(), authority)
    request = m.request()
    nonce = m.challenge(request)
    assert m.attest(request, nonce)["verdict"] == "released"
    _refused(m.attest(request, nonce), "already used")
    assert [r["event"] for r in _audit(m.broker)][-1] == "refusal"


def test_failed_attempt_consumes_the_nonce(
    make_broker: Callable[..., KeyBroker], authority: SimulatedAuthority
) -> None:
    m = Manual(make_broker(), authority)
    request = m.request()
    nonce = m.challenge(request)
    other = Binding(b"\x01" * 32, *DEFAULT_SUITE.ids, b"x" * 32, request.digest(m.broker.broker_id))
    _refused(m.attest(request, nonce, binding=other), "binding")
    _refused(m.attest(request, nonce), "already used")


def test_stale_nonce(make_broker: Callable[..., KeyBroker], authority: SimulatedAuthority) -> None:
    now = [1000.0]
    broker = make_broker()
    broker.nonces = NonceRegistry(clock=lambda: now[0])
    m = Manual(broker, authority)
    request = m.request()
    nonce = m.challenge(request)
    now[0] += 61
    _refused(m.attest(request, nonce), "expired")


def test_nonce_from_another_request(make_broker: Callable[..., KeyBroker], authority: SimulatedAuthority) -> None:
    m = Manual(make_broker(), authority)
    nonce = m.challenge(m.request("f"))
    _refused(m.attest(m.request("g"), nonce), "another request")


def test_evidence_bound_to_another_worker_key(
    make_broker: Callable[..., KeyBroker], authority: SimulatedAuthority
) -> None:
    m = Manual(make_broker(), authority)
    request = m.request()
    nonce = m.challenge(request)
    attacker = HpkeKeyPair(DEFAULT_SUITE)
    victim_binding = Binding(
        m.broker.broker_id,
        *DEFAULT_SUITE.ids,
        HpkeKeyPair(DEFAULT_SUITE).public_bytes,
        request.digest(m.broker.broker_id),
    )
    # evidence bound to the victim's key, presented with the attacker's key
    _refused(m.attest(request, nonce, binding=victim_binding, pair=attacker), "require_binding")


def test_evidence_bound_to_another_broker(make_broker: Callable[..., KeyBroker], authority: SimulatedAuthority) -> None:
    m = Manual(make_broker(), authority)
    request = m.request()
    nonce = m.challenge(request)
    pair = HpkeKeyPair(DEFAULT_SUITE)
    foreign = Binding(b"\x42" * 32, *DEFAULT_SUITE.ids, pair.public_bytes, request.digest(b"\x42" * 32))
    _refused(m.attest(request, nonce, binding=foreign, pair=pair), "require_binding")


def test_gpu_evidence_from_another_session(
    make_broker: Callable[..., KeyBroker], authority: SimulatedAuthority
) -> None:
    m = Manual(make_broker(), authority, "tdx+gpu")
    request = m.request()
    nonce = m.challenge(request)
    old_nonce = m.challenge(request)  # another session's challenge: the GPU answered that one
    _refused(m.attest(request, nonce, evidence_nonce=old_nonce), "binding")


def test_squatted_broker_is_rejected(
    make_broker: Callable[..., KeyBroker], make_client: Callable[..., OwnedClient], tmp_path: Path
) -> None:
    real = make_broker()
    key = real.add_key()
    squatter = make_broker(state_dir=tmp_path / "squatter", audit_log=None)
    squatter.add_key(key)  # it even holds the key, but not the identity key
    client = make_client(real, transport=InProcessTransport(squatter))
    with pytest.raises(BrokerError, match="another broker"):
        client.keys([key.key_id], function="f")


def test_malformed_messages_get_clear_errors(make_broker: Callable[..., KeyBroker]) -> None:
    broker = make_broker()
    transport = InProcessTransport(broker)
    with pytest.raises(BrokerError, match="tee_kind"):
        transport.send(
            "challenge",
            {"request": {**KeyRequest("n", "tdx", "f", (bytes(16),)).to_json(), "tee_kind": "xen"}},
        )
    with pytest.raises(BrokerError, match="nonce"):
        transport.send("release", {"request": KeyRequest("n", "tdx", "f", (bytes(16),)).to_json(), "nonce": "!"})


def test_call_tickets_are_checked(make_broker: Callable[..., KeyBroker], authority: SimulatedAuthority) -> None:
    """No ticket, a ticket for another function, one signed by a data key or by an unknown key, one that does not
    cover the key, or one whose requirements the evidence does not meet: nothing is released, and each says why."""
    broker = make_broker()
    m = Manual(broker, authority)
    owner, key = m.owner, m.key.key_id
    data_key = broker.add_key()
    other_key = broker.add_key()

    def attempt(ticket: bytes, function: str = "f") -> dict[str, Any]:
        request = replace(m.request(function), ticket=ticket)
        return m.attest(request, m.challenge(request))

    _refused(attempt(b""), "carries no call ticket")
    _refused(attempt(owner.ticket("g", [key])), "another function")
    forged = issue_ticket(data_key, session_id=bytes(16), function=function_id("f"), key_ids=[key], tee="any", gpu=None)
    _refused(attempt(forged.to_bytes()), "is not a job key")
    _refused(attempt(owner.ticket("f", [other_key.key_id])), "not among those it authorises")
    _refused(attempt(owner.ticket("f", [key], tee="snp")), "tee='snp'")
    _refused(attempt(owner.ticket("f", [key], gpu="cc")), "gpu='cc'")
    stale = issue_ticket(
        owner.job, session_id=bytes(16), function=function_id("f"), key_ids=[key], tee="any", gpu=None, ttl_s=-1
    )
    _refused(attempt(stale.to_bytes()), "expired")
    assert attempt(owner.ticket("f", [key]))["verdict"] == "released"


def test_a_gpu_call_gets_keys_only_for_the_attested_gpu_it_runs_on(
    make_broker: Callable[..., KeyBroker], authority: SimulatedAuthority
) -> None:
    """A ``gpu='cc'`` request names the GPU it runs on (the SHA-256 of that GPU's attestation certificate): the
    broker releases only when a report signed by that very certificate passed -- not to a request naming no
    GPU or another one (a task that landed on a second, unattested GPU of the node)."""
    import hashlib

    broker = make_broker()
    m = Manual(broker, authority, "tdx+gpu")
    key = m.key.key_id
    identity = hashlib.sha256(authority.der("nvidia_leaf")).hexdigest()

    def attempt(gpu_identity: str) -> dict[str, Any]:
        request = replace(m.request("f"), ticket=m.owner.ticket("f", [key], gpu="cc"), gpu_identity=gpu_identity)
        return m.attest(request, m.challenge(request))

    _refused(attempt(""), "runs on no GPU, which is not one of the attested GPUs")
    _refused(attempt("ee" * 32), "runs on GPU eeeeeeeeeeeeeeee..., which is not one of the attested GPUs")
    released = attempt(identity)
    assert released["verdict"] == "released", released
    assert released["appraised"]["gpu_identities"] == [identity]


class _CountingVerifier:
    """The simulated verifier, counting how often evidence is verified."""

    name = "counting"

    def __init__(self) -> None:
        from cchet.attest.simulate.verifier import SimulatedVerifier

        self.inner, self.calls = SimulatedVerifier(), 0

    def check(self, evidence: Any, options: Any) -> Any:
        self.calls += 1
        return self.inner.check(evidence, options)


def test_keys_under_several_policies_are_verified_once_and_opt_outs_are_audited(
    authority: SimulatedAuthority, make_client: Callable[..., OwnedClient], tmp_path: Path
) -> None:
    """A GPU in devtools mode: a policy that allows it releases its key with a warning in the log and the
    audit record; the default policy refuses. Evidence for keys under both policies is verified once."""
    from cchet.attest.simulate.verifier import simulation_options
    from cchet.broker.appraisal import EvidenceAppraiser

    verifier = _CountingVerifier()
    options = simulation_options(authority).replace(verifier=verifier)
    broker = KeyBroker(
        appraiser=EvidenceAppraiser(options),
        default_policy=Policy(name="sim", allow_simulation=True),
        audit_log=tmp_path / "audit.jsonl",
    )
    lenient = Policy(name="devtools-ok", allow_simulation=True, gpu_allow_devtools=True)
    strict_key, lenient_key = broker.add_key(), broker.add_key(policy=lenient)
    client = make_client(broker, "tdx+gpu", gpu={"cc_mode": "devtools"})
    reasons = _denied(broker, client, [strict_key.key_id, lenient_key.key_id])
    assert verifier.calls == 1, "one verification for both policies"
    assert [r for r in reasons if "gpu_allow_devtools" in r] and all(r.startswith("policy sim:") for r in reasons)
    released = client.keys([lenient_key.key_id], function="pkg.f")
    assert released[lenient_key.key_id] == lenient_key and verifier.calls == 2
    [release] = [r for r in _audit(broker) if r["event"] == "release"]
    assert any("warning" in r and "devtools" in r for r in release["reasons"]), release
