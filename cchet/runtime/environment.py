"""What a cchet worker learns from its environment: its broker, its attester, its key scope.

A worker process learns its broker from ``CCHET_BROKER_URL`` and the pinned ``CCHET_BROKER_ID`` (in
simulation, ``CCHET_SIMULATE`` and ``CCHET_SIM_KEY_DIR`` name the simulated TEE); ``CCHET_SCOPE`` differs per
key scope, so that Ray never runs two scopes in one worker process. None of these is secret: the broker
releases nothing without fresh evidence and the data owner's call ticket.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from cchet.broker.client import BrokerClient
from cchet.errors import CchetError

__all__ = ["ENV", "in_worker", "node_attester", "worker_client"]

ENV = {
    "broker_url": "CCHET_BROKER_URL",
    "broker_id": "CCHET_BROKER_ID",
    "simulate": "CCHET_SIMULATE",
    "sim_key_dir": "CCHET_SIM_KEY_DIR",
    "scope": "CCHET_SCOPE",
}

_client_lock = threading.Lock()
_clients: dict[tuple[str, str], BrokerClient] = {}


def in_worker() -> bool:
    """True in a cchet worker process (every one gets a scope; drivers none)."""
    return bool(os.environ.get(ENV["scope"]))


def node_attester() -> Any:
    """This node's attester: SIMULATED when ``CCHET_SIMULATE`` names a kind, else the local TEE's."""
    kind = os.environ.get(ENV["simulate"])
    if kind:
        from cchet.attest.simulate.attester import SimulatedAttester

        return SimulatedAttester.for_kind(kind, os.environ.get(ENV["sim_key_dir"]))
    from cchet.attest.attesters.local import local_attester

    return local_attester()


def worker_client() -> BrokerClient:
    """This process's broker client, made once from the environment Ray gave the worker."""
    url, broker_id = os.environ.get(ENV["broker_url"]), os.environ.get(ENV["broker_id"])
    if not url or not broker_id:
        raise CchetError(
            "this Ray worker has no cchet broker configured (CCHET_BROKER_URL / CCHET_BROKER_ID); "
            "confidential tasks are submitted through @cchet.remote after cchet.init()"
        )
    with _client_lock:
        client = _clients.get((url, broker_id))
        if client is None:
            import ray

            from cchet.broker.transport import HttpTransport

            client = BrokerClient(
                HttpTransport(url),
                broker_id=bytes.fromhex(broker_id),
                attester=node_attester(),
                node_id=ray.get_runtime_context().get_node_id(),
            )
            _clients[(url, broker_id)] = client
        return client
