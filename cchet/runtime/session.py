"""``cchet.init``: the driver's session -- Ray, the key broker, the job key, and the attested nodes.

One session per driver process. It holds a random 16-byte session id (bound into every sealed context), a
job key for the session's intermediates (released only to workers that pass the session policy), the key
broker (a listener thread in this process, so keys never leave it), and the registry of attested nodes that
placement uses.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cchet.attest.policy import Policy
from cchet.errors import CchetError, PlacementError
from cchet.hazmat.keys import DataKey
from cchet.runtime.registry import NodeRegistry
from cchet.runtime.worker import ENV

__all__ = ["Session", "current", "init", "shutdown"]

_lock = threading.Lock()
_session: Session | None = None


@dataclass
class Session:
    session_id: bytes
    broker: Any
    server: Any
    broker_url: str
    policy: Policy
    job_key: DataKey
    simulate: str | None
    sim_key_dir: str | None
    registry: NodeRegistry
    started_ray: bool
    keys: dict[bytes, DataKey] = field(default_factory=dict)
    policy_keys: dict[str, DataKey] = field(default_factory=dict)

    def key(self, key_id: bytes) -> DataKey:
        """A key the data owner holds: the job key, a policy key, or any key in the broker."""
        if key_id in self.keys:
            return self.keys[key_id]
        entry = self.broker.keys.get(key_id)
        if entry is None:
            from cchet.errors import IntegrityError

            raise IntegrityError()
        key: DataKey = entry.key
        return key

    def key_for_policy(self, policy: Policy | None) -> DataKey:
        """The job key for results of functions held to ``policy`` (the session job key by default)."""
        if policy is None:
            return self.job_key
        with _lock:
            key = self.policy_keys.get(policy.policy_id)
            if key is None:
                key = self.broker.add_key(policy=policy, kind="job", expires=time.time() + JOB_KEY_LIFETIME_S)
                self.policy_keys[policy.policy_id] = key
                self.keys[key.key_id] = key
        return key

    def worker_env(self, scope: bytes) -> dict[str, str]:
        env = {
            ENV["broker_url"]: self.broker_url,
            ENV["broker_id"]: self.broker.broker_id.hex(),
            ENV["scope"]: hashlib.sha256(self.session_id + scope).hexdigest()[:16],
        }
        if self.simulate:
            env[ENV["simulate"]] = self.simulate
            env[ENV["sim_key_dir"]] = str(self.sim_key_dir)
        return env


JOB_KEY_LIFETIME_S = 24 * 3600


def default_broker_state() -> Path:
    """``$XDG_STATE_HOME/cchet/broker`` (``~/.local/state/cchet/broker``)."""
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "cchet" / "broker"


def current() -> Session:
    """The session of this driver; ``CchetError`` telling to call ``cchet.init()`` when there is none."""
    if _session is None:
        raise CchetError("no cchet session: call cchet.init() first (e.g. cchet.init(simulate='tdx'))")
    return _session


def _simulated_policy(kind: str, key_dir: str) -> Policy:
    from cchet.attest.reference import reference_policy
    from cchet.attest.simulate.attester import SimulatedAttester
    from cchet.attest.simulate.composite import simulate_composite

    attester = SimulatedAttester.for_kind(kind, key_dir)
    evidence = simulate_composite(
        attester.authority, attester.tee_kind, report_data=bytes(64), gpus=attester.gpu_count
    )
    return reference_policy([evidence], name=f"simulated-{kind}", allow_simulation=True)


def init(
    address: str | None = None,
    *,
    simulate: str | None = None,
    policy: Policy | None = None,
    broker: str | None = None,
    audit_log: str | os.PathLike[str] | None = None,
    broker_state: str | os.PathLike[str] | None = None,
    **ray_init_kwargs: Any,
) -> Session:
    """Start (or join) Ray, start the key broker, attest the nodes, and make this the current session.

    ``simulate`` (``"tdx"``, ``"snp"``, ``"sgx"``, optionally ``"+gpu"``) runs one local node as a SIMULATED
    TEE: it says so on start-up, and simulated TEEs protect nothing. Without an ``address`` a fresh local Ray
    is started (``address="local"``). With ``simulate`` and no ``policy``, the policy pins the simulator's
    measurements and allows simulation; an explicit ``policy`` keeps its own ``allow_simulation``.
    ``audit_log`` records every key-release decision. ``broker_state`` is the broker's state directory
    (master key, key store); with an ``audit_log`` it defaults to ``$XDG_STATE_HOME/cchet/broker`` so that
    the log stays verifiable (``cchet audit verify LOG --state DIR``) after this process ends. Other keyword
    arguments go to ``ray.init``.
    """
    global _session  # noqa: PLW0603 - the one session of this driver
    import ray

    from cchet.attest.simulate.attester import parse_kind
    from cchet.attest.simulate.authority import SimulatedAuthority, default_key_dir
    from cchet.attest.simulate.verifier import simulation_options
    from cchet.attest.verify.options import default_options
    from cchet.broker.appraisal import EvidenceAppraiser
    from cchet.broker.broker import KeyBroker
    from cchet.broker.server import BrokerServer

    if broker is not None:
        raise CchetError(
            "cchet.init(broker=URL) (a standalone broker) is not available yet: run without broker= to use "
            "the broker inside this driver"
        )
    with _lock:
        if _session is not None:
            raise CchetError("cchet.init() was already called in this process; call cchet.shutdown() first")
    gpus = 0
    sim_key_dir = None
    options = default_options()
    if simulate is not None:
        _kind, gpus = parse_kind(simulate)
        sim_key_dir = str(default_key_dir())
        authority = SimulatedAuthority.open(sim_key_dir)
        options = simulation_options(authority)
        if policy is None:
            policy = _simulated_policy(simulate, sim_key_dir)
        print(
            f"cchet: SIMULATED {simulate} TEE on this node: simulated TEEs protect nothing; evidence is "
            f"signed by the simulator's keys in {sim_key_dir}",
            file=sys.stderr,
        )
    policy = policy or Policy()
    started = False
    if not ray.is_initialized():
        if address is None:
            address = "local"
            if gpus:
                ray_init_kwargs.setdefault("num_gpus", gpus)
        ray_init_kwargs.setdefault("include_dashboard", False)
        ray_init_kwargs.setdefault("log_to_driver", True)
        ray.init(address=address, **ray_init_kwargs)
        started = True
    if broker_state is None and audit_log is not None:
        broker_state = default_broker_state()
    key_broker = KeyBroker(
        appraiser=EvidenceAppraiser(options),
        default_policy=policy,
        state_dir=None if broker_state is None else Path(broker_state),
        audit_log=None if audit_log is None else Path(audit_log),
    )
    local = address in (None, "local")
    host = "127.0.0.1" if local else ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
    server = BrokerServer(key_broker, host).start()
    job_key = key_broker.add_key(policy=policy, kind="job", expires=time.time() + JOB_KEY_LIFETIME_S)
    registry = NodeRegistry(key_broker.broker_id, options, policy, key_broker.audit)
    session = Session(
        session_id=os.urandom(16),
        broker=key_broker,
        server=server,
        broker_url=server.url,
        policy=policy,
        job_key=job_key,
        simulate=simulate,
        sim_key_dir=sim_key_dir,
        registry=registry,
        started_ray=started,
        keys={job_key.key_id: job_key},
    )
    with _lock:
        _session = session
    try:
        registry.attest_all(session.worker_env(b"node-agent"))
    except BaseException:
        shutdown()
        raise
    return session


def shutdown() -> None:
    """Stop the broker listener and (when cchet started it) Ray; forget the session and its keys."""
    global _session
    import ray

    with _lock:
        session, _session = _session, None
    if session is None:
        return
    session.server.stop()
    if session.started_ray and ray.is_initialized():
        ray.shutdown()


def require_placement(tee: str, gpu: str | None) -> list[str]:
    """Node ids that qualify for ``tee`` and ``gpu``; ``PlacementError`` naming what exists otherwise."""
    session = current()
    nodes = session.registry.qualifying(tee, gpu)
    if nodes:
        return nodes
    known = session.registry.describe() or "none"
    hint = (
        "to try it without a TEE, start with cchet.init(simulate='tdx') (or 'snp', 'sgx', 'tdx+gpu')"
        if not session.simulate
        else f"this session simulates {session.simulate!r}"
    )
    raise PlacementError(
        f"no attested node qualifies for tee={tee!r}, gpu={gpu!r}; attested nodes: {known}; {hint}"
    )
