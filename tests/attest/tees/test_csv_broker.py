"""A SIMULATED Hygon CSV node gets keys from the key broker in-process (the real broker, appraiser and client, as
in tests/broker), and a call that needs ``tee="csv"`` is refused to a node of another kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cchet import KeyReleaseDenied
from cchet.attest import Policy
from cchet.attest.simulate.authority import SimulatedAuthority
from cchet.broker.broker import KeyBroker
from tests.broker.owner import OwnedClient, Owner, function_id, simulated_broker, simulated_node


def _client(broker: KeyBroker, authority: SimulatedAuthority, kind: str, owner: Owner, **attester: Any) -> OwnedClient:
    return OwnedClient(simulated_node(broker, authority, kind, **attester), owner)


@pytest.mark.parametrize("version", [1, 2])
def test_a_simulated_csv_node_gets_keys(authority: SimulatedAuthority, tmp_path: Path, version: int) -> None:
    from cchet.attest.tees.csv.simulate import simulate_csv_report

    measurement = simulate_csv_report(authority, report_data=bytes(64), version=version)[0].measurement.hex()
    policy = Policy(name="csv", allow_simulation=True, tee_kinds=("csv",), csv={"measurement": [measurement]})
    broker = simulated_broker(authority, tmp_path, policy)
    key = broker.add_key()
    owned = _client(broker, authority, "csv", Owner(broker), cpu={"version": version})
    released = owned.keys([key.key_id], function="pkg.f")
    assert released[key.key_id] == key and released.simulated


def test_a_policy_for_other_kinds_refuses_a_csv_node(authority: SimulatedAuthority, tmp_path: Path) -> None:
    broker = simulated_broker(authority, tmp_path, Policy(name="tdx-only", allow_simulation=True))
    key = broker.add_key()
    with pytest.raises(KeyReleaseDenied, match="tee_kinds"):
        _client(broker, authority, "csv", Owner(broker)).keys([key.key_id], function="f")


def test_a_call_that_needs_tee_csv_runs_on_csv_nodes_only(authority: SimulatedAuthority, tmp_path: Path) -> None:
    policy = Policy(name="sim", allow_simulation=True, tee_kinds=("tdx", "csv"))
    broker = simulated_broker(authority, tmp_path, policy)
    owner = Owner(broker)
    key = broker.add_key()
    ticket = owner.ticket("pkg.g", [key.key_id], tee="csv")
    csv_node = _client(broker, authority, "csv", owner).client
    released = csv_node.keys([key.key_id], function=function_id("pkg.g").hex(), ticket=ticket)
    assert released[key.key_id] == key
    tdx_node = _client(broker, authority, "tdx", owner).client
    with pytest.raises(KeyReleaseDenied, match="tee='csv'"):
        tdx_node.keys([key.key_id], function=function_id("pkg.g").hex(), ticket=ticket)
