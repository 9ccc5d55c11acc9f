"""The data owner's side of key release, for broker tests: a job key the broker holds, and call tickets."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cchet.attest import Policy
from cchet.attest.simulate.attester import SimulatedAttester
from cchet.attest.simulate.authority import SimulatedAuthority
from cchet.attest.simulate.verifier import simulation_options
from cchet.broker.appraisal import EvidenceAppraiser
from cchet.broker.broker import KeyBroker
from cchet.broker.client import BrokerClient, ReleasedKeys
from cchet.broker.tickets import issue_ticket
from cchet.broker.transport import InProcessTransport


def function_id(name: str) -> bytes:
    """A 32-byte function identity for a test function name (in a session: the digest of its sealed code)."""
    return hashlib.sha256(name.encode()).digest()


class Owner:
    """The data owner: a job key the broker holds, and the call tickets it signs with it (one per function, key
    set and requirements, as a session makes them: a client caches releases per ticket)."""

    def __init__(self, broker: KeyBroker) -> None:
        self.job = broker.add_key(kind="job")
        self._tickets: dict[tuple[object, ...], bytes] = {}

    def ticket(self, function: str, key_ids: Iterable[bytes], tee: str = "any", gpu: str | None = None) -> bytes:
        ids = tuple(sorted(key_ids))
        slot = (function, ids, tee, gpu)
        if slot not in self._tickets:
            self._tickets[slot] = issue_ticket(
                self.job, session_id=bytes(16), function=function_id(function), key_ids=ids, tee=tee, gpu=gpu
            ).to_bytes()
        return self._tickets[slot]


class OwnedClient:
    """A worker's :class:`BrokerClient` whose requests carry the owner's ticket for the function they name."""

    def __init__(self, client: BrokerClient, owner: Owner) -> None:
        self.client = client
        self.owner = owner

    @property
    def attestations(self) -> int:
        return self.client.attestations

    def keys(self, key_ids: Iterable[bytes], *, function: str, data_ids: Iterable[str] = ()) -> ReleasedKeys:
        ids = list(key_ids)
        ticket = self.owner.ticket(function, ids)
        return self.client.keys(ids, function=function_id(function).hex(), data_ids=data_ids, ticket=ticket)


def simulated_broker(authority: SimulatedAuthority, tmp_path: Path, policy: Policy) -> KeyBroker:
    """A broker in ``tmp_path`` that appraises evidence against ``authority``'s SIMULATED roots."""
    return KeyBroker(
        appraiser=EvidenceAppraiser(simulation_options(authority)),
        default_policy=policy,
        state_dir=tmp_path / "state",
        audit_log=tmp_path / "audit.jsonl",
    )


def simulated_node(
    broker: KeyBroker, authority: SimulatedAuthority, kind: str, node_id: str = "node-1", **attester: Any
) -> BrokerClient:
    """A worker's client on a SIMULATED node of ``kind`` (``attester`` overrides its evidence fields)."""
    return BrokerClient(
        InProcessTransport(broker),
        broker_id=broker.broker_id,
        attester=SimulatedAttester.for_kind(kind, str(authority.key_dir), **attester),
        node_id=node_id,
    )
