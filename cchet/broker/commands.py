"""``cchet broker serve|key|id`` and ``cchet audit verify``: the data owner's key broker from the shell."""

from __future__ import annotations

import argparse
import contextlib
import signal
import ssl
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cchet.broker.ratelimit import RATE_BURST, RATE_PER_S

LOCK_FILE = "broker.lock"

__all__ = ["register"]

DEFAULT_PORT = 8470


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    broker = sub.add_parser("broker", help="run the data owner's key broker and manage its keys")
    actions = broker.add_subparsers(dest="broker_command", metavar="ACTION", required=True)

    serve = actions.add_parser("serve", help="serve key release over HTTP(S)")
    _state(serve)
    serve.add_argument("--policy", type=Path, help="default policy file (.toml/.json/.yaml)")
    serve.add_argument("--audit-log", type=Path, help="append-only, MAC-chained audit log (JSON lines)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any)")
    serve.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate chain (PEM)")
    serve.add_argument("--tls-key", type=Path, help="private key of --tls-cert (PEM)")
    serve.add_argument(
        "--rate-limit",
        type=float,
        default=RATE_PER_S,
        metavar="PER_S",
        help=f"protocol messages a second each client address may send, sustained (default {RATE_PER_S:g})",
    )
    serve.add_argument(
        "--rate-burst",
        type=int,
        default=RATE_BURST,
        metavar="N",
        help=f"protocol messages each client address may send at once (default {RATE_BURST})",
    )
    serve.add_argument(
        "--simulation-keys",
        type=Path,
        help="trust SIMULATED evidence from this simulator key directory (only policies with "
        "allow_simulation accept it)",
    )
    serve.set_defaults(run=_serve)

    key = actions.add_parser("key", help="add a data key to the broker's store")
    key_actions = key.add_subparsers(dest="key_action", metavar="ACTION", required=True)
    add = key_actions.add_parser("add", help="create a key under a policy and write it to a 0600 key file")
    _state(add)
    add.add_argument("--policy", type=Path, help="policy file for this key (default: the broker's default)")
    add.add_argument("--function", action="append", default=None, help="restrict release to this function")
    add.add_argument("--data-id", action="append", default=None, help="restrict release to this data id")
    add.add_argument("--kind", choices=("data", "stream", "job"), default="data")
    add.add_argument("--out", type=Path, required=True, help="key file for sealing with 'cchet seal'")
    add.set_defaults(run=_key_add)

    ident = actions.add_parser("id", help="print the broker id workers must pin, and the master fingerprint")
    _state(ident)
    ident.set_defaults(run=_id)

    cluster = actions.add_parser("cluster", help="hardened cluster mode: Ray TLS credentials for attested nodes")
    cluster_actions = cluster.add_subparsers(dest="cluster_action", metavar="ACTION", required=True)
    cinit = cluster_actions.add_parser("init", help="issue the cluster's TLS credentials and token, sealed")
    _state(cinit)
    cinit.add_argument("--policy", type=Path, help="policy a node must satisfy to join (default: the broker's)")
    cinit.add_argument("--san", action="append", default=[], help="extra IP or DNS name for the node certificate")
    cinit.add_argument("--owner-credentials", type=Path, help="also write the owner's copy (for its driver) here")
    cinit.add_argument("--audit-log", type=Path, help="the broker's audit log, to record a rotation in")
    cinit.add_argument(
        "--rotate",
        action="store_true",
        help="replace credentials issued before and retire their cluster key (then restart every node)",
    )
    cinit.set_defaults(run=_cluster_init)

    audit = sub.add_parser("audit", help="check a broker audit log")
    audit_actions = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    verify = audit_actions.add_parser("verify", help="verify every record's MAC, the chain and the head anchor")
    verify.add_argument("log", type=Path)
    verify.add_argument(
        "--state",
        type=Path,
        help="state directory of the broker that wrote LOG (default: where cchet.init(audit_log=...) keeps it, "
        "$XDG_STATE_HOME/cchet/broker)",
    )
    verify.set_defaults(run=_audit_verify)


def _state(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", type=Path, required=True, help="broker state directory (master key, keys)")


@contextlib.contextmanager
def _exclusive(state: Path) -> Iterator[None]:
    """Hold the state directory for one command: ``serve`` for its lifetime, commands that change the key store
    while they run. A broker keeps the key store it loaded and writes it back, so a change made beside a running
    one would be lost: ``ValueError`` saying so when another command holds it."""
    import fcntl

    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    with (state / LOCK_FILE).open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(
                f"another cchet command ('cchet broker serve'?) is using {state}: stop it first -- a running "
                "broker keeps the key store it loaded and would write over this change"
            ) from None
        yield


def _policy(path: Path | None) -> Any:
    from cchet.attest.policy import Policy

    return Policy.from_file(path) if path else Policy()


def _broker(args: argparse.Namespace, **kw: Any) -> Any:
    from cchet.attest.verify.options import default_options
    from cchet.broker.appraisal import EvidenceAppraiser
    from cchet.broker.broker import KeyBroker

    options = default_options()
    sim_dir = getattr(args, "simulation_keys", None)
    if sim_dir is not None:
        from cchet.attest.simulate.authority import SimulatedAuthority
        from cchet.attest.simulate.verifier import simulation_options

        options = simulation_options(SimulatedAuthority.open(sim_dir))
        print(
            f"cchet broker: trusting SIMULATED evidence from {sim_dir}: simulated TEEs protect nothing",
            file=sys.stderr,
        )
    return KeyBroker(
        appraiser=EvidenceAppraiser(options),
        default_policy=_policy(getattr(args, "policy", None)),
        state_dir=args.state,
        **kw,
    )


def _serve(args: argparse.Namespace) -> int:
    from cchet.broker.ratelimit import RateLimit

    if (args.tls_cert is None) != (args.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    rate_limit = RateLimit(args.rate_limit, args.rate_burst)
    with _exclusive(args.state):
        return _serve_locked(args, rate_limit)


def _serve_locked(args: argparse.Namespace, rate_limit: Any) -> int:
    from cchet.broker.server import BrokerServer

    broker = _broker(args, audit_log=args.audit_log)
    context = None
    if args.tls_cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
    server = BrokerServer(broker, args.host, args.port, ssl_context=context, rate_limit=rate_limit).start()
    print(
        f"cchet broker serving {server.url}\n"
        f"  broker id (pin this on workers): {broker.broker_id.hex()}\n"
        f"  master key fingerprint: {broker.master_fingerprint}"
        + (" (new)" if broker.master_created else "")
        + f"\n  keys: {len(broker.keys)}; audit log: {args.audit_log or 'none'}",
        flush=True,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return 0


def _key_add(args: argparse.Namespace) -> int:
    with _exclusive(args.state):
        return _key_add_locked(args)


def _key_add_locked(args: argparse.Namespace) -> int:
    from cchet.broker.keystore import KeyScope
    from cchet.crypto.keyfile import write_key_file

    broker = _broker(args)
    scope = KeyScope(
        None if args.function is None else frozenset(args.function),
        None if args.data_id is None else frozenset(args.data_id),
    )
    key = broker.add_key(policy=_policy(args.policy) if args.policy else None, scope=scope, kind=args.kind)
    write_key_file(args.out, key)
    print(f"added {args.kind} key {key.key_id.hex()} to {args.state}; key file {args.out} (mode 0600)")
    return 0


def _cluster_init(args: argparse.Namespace) -> int:
    with _exclusive(args.state):
        return _cluster_init_locked(args)


def _cluster_init_locked(args: argparse.Namespace) -> int:
    from cchet.broker.cluster import init_cluster
    from cchet.broker.durable import replace_file

    broker = _broker(args, audit_log=args.audit_log)
    key, creds = init_cluster(
        broker, args.state, _policy(args.policy) if args.policy else broker.default_policy, args.san, rotate=args.rotate
    )
    print(f"cluster credentials issued; cluster key {key.key_id.hex()} (released only to attested nodes)")
    if args.rotate:
        print(
            "the previous cluster key is retired: restart every node with 'cchet start' and give drivers the new "
            "owner credentials; nodes still on the old credentials show 'hardened no' in 'cchet status'"
        )
    if args.owner_credentials:
        env = creds.write(args.owner_credentials)
        print(f"owner's copy in {args.owner_credentials}; connect a driver with:")
        print(" ".join(f"{k}={v}" for k, v in env.items() if k != "RAY_AUTH_TOKEN") + " RAY_AUTH_TOKEN=<in token file>")
        replace_file(args.owner_credentials / "token", creds.token.encode())
    return 0


def _id(args: argparse.Namespace) -> int:
    broker = _broker(args)
    print(f"broker id: {broker.broker_id.hex()}\nmaster key fingerprint: {broker.master_fingerprint}")
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    from cchet.broker.audit import verify_audit_log
    from cchet.broker.master import MASTER_FILE, MasterKey
    from cchet.runtime.session import default_broker_state

    state = args.state or default_broker_state()
    if not (state / MASTER_FILE).exists():
        raise FileNotFoundError(
            f"no broker master key in {state}: pass --state DIR, the state directory of the broker that wrote "
            f"{args.log}" + ("" if args.state else " (the default is where cchet.init(audit_log=...) keeps it)")
        )
    report = verify_audit_log(args.log, MasterKey.load(state).derive("audit"))
    if report.ok:
        print(f"{args.log}: {report.records} records, chain and head anchor intact")
        return 0
    where = "the head anchor" if report.first_bad is None else f"record {report.first_bad}"
    print(f"{args.log}: BAD at {where}: {report.problem}", file=sys.stderr)
    return 1
