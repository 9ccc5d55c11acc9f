"""A simulated world for broker tests: one simulator key directory per session, brokers per test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cchet.attest import Policy
from cchet.attest.simulate.attester import SimulatedAttester
from cchet.attest.simulate.authority import SimulatedAuthority
from cchet.attest.simulate.verifier import simulation_options
from cchet.broker.appraisal import EvidenceAppraiser
from cchet.broker.broker import KeyBroker
from cchet.broker.client import BrokerClient
from cchet.broker.transport import InProcessTransport, Transport
from tests.broker.owner import OwnedClient, Owner

SIM_POLICY = Policy(name="sim", allow_simulation=True)


@pytest.fixture(scope="session")
def authority(tmp_path_factory: pytest.TempPathFactory) -> SimulatedAuthority:
    return SimulatedAuthority.open(tmp_path_factory.mktemp("sim-keys"))


@pytest.fixture
def make_broker(authority: SimulatedAuthority, tmp_path: Path) -> Callable[..., KeyBroker]:
    def make(policy: Policy = SIM_POLICY, *, tcb_status: str = "UpToDate", **kw: Any) -> KeyBroker:
        kw.setdefault("state_dir", tmp_path / "state")
        kw.setdefault("audit_log", tmp_path / "audit.jsonl")
        options = simulation_options(authority, tcb_status=tcb_status)
        return KeyBroker(appraiser=EvidenceAppraiser(options), default_policy=policy, **kw)

    return make


@pytest.fixture
def make_client(authority: SimulatedAuthority) -> Callable[..., OwnedClient]:
    """A worker of the data owner's session (one owner per broker): its requests carry call tickets."""
    owners: dict[int, Owner] = {}

    def make(
        broker: KeyBroker, kind: str = "tdx", *, transport: Transport | None = None, **attester: Any
    ) -> OwnedClient:
        client = BrokerClient(
            transport or InProcessTransport(broker),
            broker_id=broker.broker_id,
            attester=SimulatedAttester.for_kind(kind, str(authority.key_dir), **attester),
            node_id="node-1",
        )
        return OwnedClient(client, owners.setdefault(id(broker), Owner(broker)))

    return make
