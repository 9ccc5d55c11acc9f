"""``cchet.init``: the driver's session -- Ray, the key broker, the job key, and the attested nodes.

One session per driver process. It holds a random 16-byte session id (bound into every sealed context), a
job key for the session's intermediates (released only to workers that pass the session policy, for calls this
session made: the call tickets it signs), the key broker, the sealed code of the functions it ran, and the
registry of attested nodes that placement uses.

Attested nodes are single-tenant: anything Ray runs on them is inside the perimeter. A cluster of more than one
node that is not in hardened mode (Ray TLS and token auth, nodes admitted only by attestation: ``cchet start``)
gets no calls, so no keys, unless the data owner says ``allow_unhardened=True`` -- which is logged loudly, and
recorded in the broker's audit log with every release. A local simulated cluster started by ``cchet.init`` itself
is exempt: every node is a process of this machine, and simulation protects nothing anyway.

The broker is either a listener thread in this process (the default: keys never leave it but HPKE-sealed to
attested workers), or a standalone ``cchet broker serve`` named by ``broker=URL``, with the broker id the
workers pin and a job key the data owner created there (``cchet broker key add --kind job``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cchet.attest.policy import Policy
from cchet.attest.tees import ALL
from cchet.broker.tickets import TICKET_TTL_S, issue_ticket
from cchet.errors import CchetError, IntegrityError, PlacementError
from cchet.hazmat.keys import DataKey
from cchet.runtime.code import code_key, store_code
from cchet.runtime.environment import ENV
from cchet.runtime.registry import NodeRegistry

__all__ = ["Session", "current", "init", "shutdown"]

log = logging.getLogger("cchet.runtime")

JOB_KEY_LIFETIME_S = 24 * 3600
TICKET_RENEW_S = TICKET_TTL_S // 6  # a cached ticket is renewed when less than this is left
BROKER_ENV = {"url": "CCHET_BROKER_URL", "id": "CCHET_BROKER_ID", "job_key": "CCHET_JOB_KEY"}

_lock = threading.Lock()
_session: Session | None = None


@dataclass
class Session:
    """What ``cchet.init`` set up. ``local_broker`` is the in-process :class:`KeyBroker` (None with a
    standalone broker); ``server`` its listener."""

    session_id: bytes
    broker_id: bytes
    broker_url: str
    policy: Policy
    job_key: DataKey
    simulate: str | tuple[str, ...] | None
    sim_key_dir: str | None
    registry: NodeRegistry
    started_ray: bool
    local_broker: Any = None
    server: Any = None
    cluster: Any = None
    allow_unhardened: bool = False
    keys: dict[bytes, DataKey] = field(default_factory=dict)
    policy_keys: dict[str, DataKey] = field(default_factory=dict)
    code: dict[int, tuple[Any, bytes]] = field(default_factory=dict, repr=False)
    tickets: dict[tuple[Any, ...], tuple[int, bytes]] = field(default_factory=dict, repr=False)

    @property
    def simulates_gpu(self) -> bool:
        """Whether this session simulates GPUs (a ``+gpu`` kind): then the driver's GPU is the SIMULATED one."""
        kinds = (self.simulate,) if isinstance(self.simulate, str) else tuple(self.simulate or ())
        return any("gpu" in kind for kind in kinds)

    @property
    def hardened(self) -> bool:
        """Whether every node of the cluster proved, at its last attestation, that it holds the cluster
        credentials the broker released to attested nodes (docs/clusters.md)."""
        return self.registry.hardened()

    def __repr__(self) -> str:
        mode = "hardened" if self.hardened else "not hardened"
        sim = f", SIMULATED {self.simulate!r}" if self.simulate else ""
        return f"Session(id={self.session_id.hex()}, broker={self.broker_url}, {mode}{sim})"

    @property
    def broker(self) -> Any:
        """The in-process key broker; ``CchetError`` when the session uses a standalone one."""
        if self.local_broker is None:
            raise CchetError(f"this session uses the standalone broker at {self.broker_url}, not one in this process")
        return self.local_broker

    def key(self, key_id: bytes) -> DataKey:
        """A key the data owner holds here: the job key, a policy key, or (in-process broker) any stored key."""
        if key_id in self.keys:
            return self.keys[key_id]
        entry = self.local_broker.keys.get(key_id) if self.local_broker is not None else None
        if entry is None:
            raise IntegrityError()
        key: DataKey = entry.key
        return key

    def opening_key(self, expected: bytes, named: bytes) -> DataKey:
        """The key to open an object a descriptor says is sealed under ``expected`` whose frame names ``named``:
        the same key, or a successor the broker rotated it to; :class:`~cchet.IntegrityError` otherwise."""
        if named == expected:
            return self.key(expected)
        entry = self.local_broker.keys.get(expected) if self.local_broker is not None else None
        while entry is not None and entry.successor is not None:
            if entry.successor == named:
                return self.key(named)
            entry = self.local_broker.keys.get(entry.successor)
        raise IntegrityError()

    def function_identity(self, obj: Any) -> bytes:
        """The identity of ``obj`` (a function or class) in this session: sealed under the job key and stored
        for the workers on first use (:mod:`cchet.runtime.code`)."""
        with _lock:
            found = self.code.get(id(obj))
            if found is not None and found[0] is obj:
                return found[1]
        digest = store_code(self.job_key, self.session_id, obj)
        with _lock:
            self.code[id(obj)] = (obj, digest)  # holding obj keeps its id from being reused
        return digest

    def forget_code(self) -> None:
        """Remove this session's sealed code from the cluster's store."""
        from cchet.runtime.raystore import delete_blob

        with _lock:
            digests, self.code = [d for _, d in self.code.values()], {}
        for digest in digests:
            delete_blob(code_key(digest))

    def ticket(self, function: bytes, key_ids: tuple[bytes, ...], tee: str, gpu: str | None) -> bytes:
        """This session's call ticket for calls of ``function`` needing ``key_ids``, renewed before it expires."""
        slot = (function, key_ids, tee, gpu)
        now = time.time()
        with _lock:
            found = self.tickets.get(slot)
            if found is not None and found[0] - now > TICKET_RENEW_S:
                return found[1]
        made = issue_ticket(
            self.job_key,
            session_id=self.session_id,
            function=function,
            key_ids=key_ids,
            tee=tee,
            gpu=gpu,
            unhardened=self.allow_unhardened and not self.hardened,
        )
        with _lock:
            self.tickets[slot] = (made.expires, made.to_bytes())
        return made.to_bytes()

    def check_tenancy(self) -> None:
        """``CchetError`` saying how to start hardened mode when this is a multi-node cluster outside it (and
        the owner has not allowed that explicitly)."""
        if self.hardened or self.allow_unhardened or self.cluster is not None:
            return
        nodes = self.registry.node_count
        if nodes > 1:
            raise CchetError(
                f"this Ray cluster has {nodes} nodes and is not in hardened mode, so code that is not cchet's "
                "could run on the attested nodes, inside the perimeter, and ask for keys: start it in hardened "
                "mode ('cchet broker cluster init' on the owner's machine, then 'cchet start -- <ray start "
                "args>' on every node; see docs/clusters.md), or, if every node runs only your jobs, pass "
                "cchet.init(..., allow_unhardened=True), which is logged and audited"
            )

    def key_for_policy(self, policy: Policy | None) -> DataKey:
        """The job key for results of functions held to ``policy`` (the session job key by default)."""
        if policy is None:
            return self.job_key
        if self.local_broker is None:
            raise CchetError(
                "@cchet.remote(policy=...) needs the broker in this process to create a key under that policy; "
                "with a standalone broker, add one with 'cchet broker key add --kind job --policy FILE' and pass "
                "it to the task with keys=[...]"
            )
        with _lock:
            key = self.policy_keys.get(policy.policy_id)
            if key is None:
                expires = time.time() + JOB_KEY_LIFETIME_S
                key = self.local_broker.add_key(policy=policy, kind="job", expires=expires)
                self.policy_keys[policy.policy_id] = key
                self.keys[key.key_id] = key
        return key

    def worker_env(self, scope: bytes) -> dict[str, str]:
        """What a worker of this session needs in its environment (``runtime_env``); a distinct ``scope``
        gives a distinct environment, so Ray never mixes scopes in one worker process."""
        env = {
            ENV["broker_url"]: self.broker_url,
            ENV["broker_id"]: self.broker_id.hex(),
            ENV["scope"]: hashlib.sha256(self.session_id + scope).hexdigest()[:16],
        }
        if isinstance(self.simulate, str):  # one kind for the whole cluster; per-node kinds live in node envs
            env[ENV["simulate"]] = self.simulate
            env[ENV["sim_key_dir"]] = str(self.sim_key_dir)
        return env

    def status(self) -> list[dict[str, Any]]:
        """The registry as rows (node, TEE, GPUs, CC, verdict, expiry), also written for ``cchet status``."""
        self.registry.write_status(status_path(), hardened=self.hardened)
        return self.registry.rows()


def status_path() -> Path:
    """Where the driver publishes its registry for ``cchet status``: ``$XDG_STATE_HOME/cchet/status.json``."""
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "cchet" / "status.json"


def default_broker_state() -> Path:
    """``$XDG_STATE_HOME/cchet/broker`` (``~/.local/state/cchet/broker``)."""
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "cchet" / "broker"


def current() -> Session:
    """The session of this driver; ``CchetError`` telling to call ``cchet.init()`` when there is none."""
    if _session is None:
        raise CchetError("no cchet session: call cchet.init() first (e.g. cchet.init(simulate='tdx'))")
    return _session


def _simulated_policy(kinds: tuple[str, ...], key_dir: str) -> Policy:
    """A policy pinning the simulator's measurements for every kind in ``kinds``, allowing simulation."""
    from cchet.attest.reference import reference_policy
    from cchet.attest.simulate.attester import SimulatedAttester
    from cchet.attest.simulate.composite import simulate_composite

    evidence = []
    for kind in kinds:
        attester = SimulatedAttester.for_kind(kind, key_dir)
        evidence.append(
            simulate_composite(attester.authority, attester.tee_kind, report_data=bytes(64), gpus=attester.gpu_count)
        )
    return reference_policy(evidence, name="simulated-" + "-".join(sorted(set(kinds))), allow_simulation=True)


def _has_ray_token() -> bool:
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    candidates = [Path(path)] if path else [Path.home() / ".ray" / "auth_token"]
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or any(p.is_file() and p.stat().st_size for p in candidates)


def _simulated_cluster(kinds: tuple[str, ...], key_dir: str, ray_init_kwargs: dict[str, Any]) -> Any:
    """A local multi-node Ray cluster, one SIMULATED TEE kind per node (the first is the head)."""
    import ray
    from ray.cluster_utils import Cluster

    from cchet.attest.simulate.attester import parse_kind

    def node_args(kind: str) -> dict[str, Any]:
        args: dict[str, Any] = {
            "num_cpus": ray_init_kwargs.get("num_cpus", 1),
            "num_gpus": parse_kind(kind)[1],
            "env_vars": {ENV["simulate"]: kind, ENV["sim_key_dir"]: key_dir},
        }
        if "object_store_memory" in ray_init_kwargs:
            args["object_store_memory"] = ray_init_kwargs["object_store_memory"]
        return args

    if os.environ.get("RAY_AUTH_MODE") == "token" and not _has_ray_token():
        # ray.init makes a token when token auth is on; Cluster does not, so give this cluster one of its own
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    head = node_args(kinds[0])
    if "_temp_dir" in ray_init_kwargs:
        head["temp_dir"] = ray_init_kwargs["_temp_dir"]
    # Cluster records its address in Ray's default temp dir ($RAY_TMPDIR, $TMPDIR or /tmp, then "ray")
    # whatever temp_dir the head uses, and fails when that folder does not exist yet (a fresh machine)
    default_tmp = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"  # noqa: S108 - Ray's default
    Path(default_tmp, "ray").mkdir(mode=0o777, exist_ok=True)
    cluster = Cluster(initialize_head=True, head_node_args=head)
    for kind in kinds[1:]:
        cluster.add_node(**node_args(kind))
    ray.init(address=cluster.address)
    return cluster


def _standalone(
    broker: str, broker_id: str | bytes | None, job_key: DataKey | str | os.PathLike[str] | None
) -> tuple[bytes, DataKey]:
    from cchet.crypto.keyfile import read_key_file

    bid = broker_id if broker_id is not None else os.environ.get(BROKER_ENV["id"])
    if bid is None:
        raise CchetError(
            f"cchet.init(broker={broker!r}) needs the broker id the workers must pin: pass broker_id= or set "
            f"{BROKER_ENV['id']} (print it on the broker's machine with 'cchet broker id --state DIR')"
        )
    pinned = bytes.fromhex(bid) if isinstance(bid, str) else bytes(bid)
    if len(pinned) != 32:
        raise ValueError("broker_id is 32 bytes (64 hex digits): the SHA-256 of the broker's public key")
    source = job_key if job_key is not None else os.environ.get(BROKER_ENV["job_key"])
    if source is None:
        raise CchetError(
            f"cchet.init(broker={broker!r}) needs the session's job key: create one on the broker's machine with "
            f"'cchet broker key add --kind job --out job.key' and pass job_key='job.key' (or set "
            f"{BROKER_ENV['job_key']})"
        )
    key = source if isinstance(source, DataKey) else read_key_file(source)
    return pinned, key


def init(
    address: str | None = None,
    *,
    simulate: str | list[str] | tuple[str, ...] | None = None,
    policy: Policy | None = None,
    broker: str | None = None,
    broker_id: str | bytes | None = None,
    job_key: DataKey | str | os.PathLike[str] | None = None,
    audit_log: str | os.PathLike[str] | None = None,
    broker_state: str | os.PathLike[str] | None = None,
    allow_unhardened: bool = False,
    **ray_init_kwargs: Any,
) -> Session:
    """Start (or join) Ray, start (or reach) the key broker, attest the nodes; make this the current session.

    ``simulate`` (``"tdx"``, ``"snp"``, ``"sgx"``, optionally ``"+gpu"``) runs the node as a SIMULATED TEE:
    it says so on start-up, and simulated TEEs protect nothing. Without an ``address`` a fresh local Ray is
    started (``address="local"``, so a stale cluster file cannot hang it). With ``simulate`` and no
    ``policy``, the policy pins the simulator's measurements and allows simulation; an explicit ``policy``
    keeps its own ``allow_simulation`` (default False).

    Broker: by default a listener thread in this process; ``audit_log`` records its every decision, and
    ``broker_state`` (default ``$XDG_STATE_HOME/cchet/broker`` when there is an audit log) keeps its master
    key so the log stays verifiable (``cchet audit verify LOG --state DIR``). ``broker=URL`` uses a standalone
    ``cchet broker serve`` instead (``$CCHET_BROKER_URL``), with its pinned ``broker_id`` (``$CCHET_BROKER_ID``)
    and a ``job_key`` created there (a key file or ``DataKey``; ``$CCHET_JOB_KEY``). Other keyword arguments
    go to ``ray.init``. Raises :class:`~cchet.CchetError` for a second ``init`` or missing broker settings.

    A cluster of more than one node must be in hardened mode (``cchet start``; docs/clusters.md): otherwise calls
    raise :class:`~cchet.CchetError` saying how, unless ``allow_unhardened=True`` -- every node then counts as
    the owner's alone, which cchet logs as a warning and records in the audit log (the call tickets carry it to
    a standalone broker, which records it with every release).
    """
    global _session  # noqa: PLW0603 - the one session of this driver
    import ray

    from cchet.attest.simulate.attester import parse_kind
    from cchet.attest.simulate.authority import SimulatedAuthority, default_key_dir
    from cchet.attest.simulate.verifier import simulation_options
    from cchet.attest.verify.options import default_options

    with _lock:
        if _session is not None:
            raise CchetError("cchet.init() was already called in this process; call cchet.shutdown() first")
    broker = broker or os.environ.get(BROKER_ENV["url"])
    standalone = _standalone(broker, broker_id, job_key) if broker else None
    if standalone and (audit_log is not None or broker_state is not None):
        raise CchetError(
            "audit_log= and broker_state= belong to the standalone broker: pass them to 'cchet broker serve'"
        )
    gpus = 0
    sim_key_dir = None
    kinds: tuple[str, ...] = () if simulate is None else (simulate,) if isinstance(simulate, str) else tuple(simulate)
    if simulate is not None:
        if not kinds:
            named = ", ".join(map(repr, ALL))
            raise ValueError(f"simulate= needs a kind ({named}; optionally '+gpu') or a list of them")
        gpus = max(parse_kind(k)[1] for k in kinds)
        sim_key_dir = str(default_key_dir())
        options = simulation_options(SimulatedAuthority.open(sim_key_dir))
        if policy is None:
            policy = _simulated_policy(kinds, sim_key_dir)
        where = "on this node" if isinstance(simulate, str) else f"on {len(kinds)} local nodes"
        print(
            f"cchet: SIMULATED {', '.join(kinds)} TEE {where}: simulated TEEs protect nothing; evidence is "
            f"signed by the simulator's keys in {sim_key_dir}",
            file=sys.stderr,
        )
    else:
        options = default_options()
    policy = policy or Policy()
    started = False
    cluster = None
    multi = bool(kinds) and not isinstance(simulate, str)
    if not ray.is_initialized():
        if address is None and multi and sim_key_dir is not None:
            cluster = _simulated_cluster(kinds, sim_key_dir, ray_init_kwargs)
        else:
            if address is None:
                address = "local"
                if gpus:
                    ray_init_kwargs.setdefault("num_gpus", gpus)
            ray_init_kwargs.setdefault("include_dashboard", False)
            ray.init(address=address, **ray_init_kwargs)
        started = True
    elif multi:
        raise CchetError(
            "simulate=[...] starts its own multi-node cluster: call cchet.init before ray.init, or join a cluster "
            "whose nodes carry CCHET_SIMULATE in their environment with simulate=None"
        )
    local_broker = server = None
    if standalone is None:
        from cchet.broker.appraisal import EvidenceAppraiser
        from cchet.broker.broker import KeyBroker
        from cchet.broker.server import BrokerServer

        if broker_state is None and audit_log is not None:
            broker_state = default_broker_state()
        local_broker = KeyBroker(
            appraiser=EvidenceAppraiser(options),
            default_policy=policy,
            state_dir=None if broker_state is None else Path(broker_state),
            audit_log=None if audit_log is None else Path(audit_log),
        )
        local = address in (None, "local")
        host = "127.0.0.1" if local else ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        server = BrokerServer(local_broker, host).start()
        session_key = local_broker.add_key(policy=policy, kind="job", expires=time.time() + JOB_KEY_LIFETIME_S)
        pinned, url = local_broker.broker_id, server.url
    else:
        pinned, session_key = standalone
        url = str(broker)
    session = Session(
        session_id=os.urandom(16),
        broker_id=pinned,
        broker_url=url,
        policy=policy,
        job_key=session_key,
        simulate=kinds if multi else (kinds[0] if kinds else None),
        sim_key_dir=sim_key_dir,
        registry=NodeRegistry(pinned, options, policy, local_broker.audit if local_broker else None),
        started_ray=started,
        local_broker=local_broker,
        server=server,
        cluster=cluster,
        allow_unhardened=allow_unhardened,
        keys={session_key.key_id: session_key},
    )
    with _lock:
        _session = session
    try:
        agent_env = session.worker_env(b"node-agent")
        session.registry.attest_all(agent_env)
        session.status()
        session.registry.start_refreshing(agent_env)
        if allow_unhardened and not session.hardened:
            _allowed_unhardened(session)
    except BaseException:
        shutdown()
        raise
    return session


def _allowed_unhardened(session: Session) -> None:
    """Say loudly, and in the audit log, that the owner let an unhardened cluster receive keys."""
    message = (
        "cchet: allow_unhardened=True: this session releases keys on a Ray cluster that is not in hardened mode; "
        "every node counts as the data owner's alone, and any code Ray runs there is inside the perimeter"
    )
    print(message, file=sys.stderr)
    log.warning("%s", message)
    if session.local_broker is not None and session.local_broker.audit is not None:
        session.local_broker.audit.record(
            "unhardened", requester=f"session={session.session_id.hex()} (data owner)", verdict="allowed"
        )


def shutdown() -> None:
    """Stop the broker listener and (when cchet started it) Ray; forget the session and its keys."""
    global _session
    import ray

    with _lock:
        session, _session = _session, None
    if session is None:
        return
    session.registry.stop()
    if ray.is_initialized():
        session.forget_code()
    if session.server is not None:
        session.server.stop()
    if session.started_ray and ray.is_initialized():
        ray.shutdown()
    if session.cluster is not None:
        session.cluster.shutdown()


def require_placement(tee: str, gpu: str | None) -> list[str]:
    """Node ids that qualify for ``tee`` and ``gpu``; ``PlacementError`` naming what exists otherwise."""
    session = current()
    nodes = session.registry.qualifying(tee, gpu)
    if nodes:
        return nodes
    from cchet.runtime import metrics

    metrics.refusal("placement")
    known = session.registry.describe() or "none"
    hint = (
        "to try it without a TEE, start with cchet.init(simulate='tdx') (or 'snp', 'sgx', 'tdx+gpu')"
        if not session.simulate
        else f"this session simulates {session.simulate!r}"
    )
    raise PlacementError(f"no attested node qualifies for tee={tee!r}, gpu={gpu!r}; attested nodes: {known}; {hint}")
