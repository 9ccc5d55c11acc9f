"""``cchet status``: the attested-node registry of the running driver, as a table.

The driver publishes its registry (``$XDG_STATE_HOME/cchet/status.json``) when it starts and whenever it
re-attests; this command reads it. It says plainly when the cluster is not in hardened mode (its head is then
trusted to choose the code workers run) and when results are SIMULATED (they protect nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    status = sub.add_parser("status", help="the attested-node registry of the running cchet driver")
    status.add_argument("--file", type=Path, help="status file (default: $XDG_STATE_HOME/cchet/status.json)")
    status.add_argument("--json", action="store_true", help="print the raw document")
    status.set_defaults(run=_status)

    start = sub.add_parser(
        "start",
        help="attest this node to the broker, then 'ray start' with the cluster's TLS credentials and token",
        description="Everything after the cchet options goes to 'ray start' (e.g. --head --port 6379, or "
        "--address HEAD:6379).",
    )
    start.add_argument("--broker", default=os.environ.get("CCHET_BROKER_URL"), help="broker URL ($CCHET_BROKER_URL)")
    start.add_argument("--broker-id", default=os.environ.get("CCHET_BROKER_ID"), help="pinned broker id (hex)")
    start.add_argument("--credentials-dir", type=Path, help="where to write the TLS files (default: /dev/shm)")
    start.add_argument("ray_args", nargs=argparse.REMAINDER, help="arguments for 'ray start'")
    start.set_defaults(run=_start)


def render(doc: dict[str, Any]) -> str:
    header = ("node", "TEE", "GPUs", "CC", "verdict", "expires", "hardened")
    rows = [header]
    for n in doc.get("nodes", []):
        verdict = n["verdict"] + (" (SIMULATED)" if n.get("simulated") else "")
        hardened = "yes" if n.get("hardened") else "no"
        rows.append((n["node"][:12], n["tee"], str(n["gpus"]), n["cc"], verdict, n["expires"], hardened))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for n in doc.get("nodes", []):
        if n["verdict"] != "accepted":
            lines.append(f"  {n['node'][:12]}: " + "; ".join(n.get("reasons", [])))
    if not doc.get("hardened"):
        lines.append(
            "not in hardened cluster mode (not every node proved it holds the cluster credentials the broker "
            "releases to attested nodes): Ray's head chooses the code attested workers run and is trusted; "
            "start nodes with 'cchet start' to admit attested nodes only"
        )
    if any(n.get("simulated") for n in doc.get("nodes", [])):
        lines.append("SIMULATED nodes protect nothing")
    lines.append(f"policy: {doc.get('policy_id', '?')}")
    return "\n".join(lines)


def _start(args: argparse.Namespace) -> int:
    from cchet.runtime.node import start

    if not args.broker or not args.broker_id:
        raise ValueError("cchet start needs --broker URL and --broker-id HEX (or CCHET_BROKER_URL / CCHET_BROKER_ID)")
    ray_args = args.ray_args[1:] if args.ray_args[:1] == ["--"] else args.ray_args
    start(args.broker, bytes.fromhex(args.broker_id), ray_args, args.credentials_dir)
    return 0  # not reached: start() becomes 'ray start'


def _status(args: argparse.Namespace) -> int:
    from cchet.runtime.session import status_path

    path = args.file or status_path()
    if not path.exists():
        print(f"cchet: no status at {path}: is a cchet driver running (cchet.init) on this machine?", file=sys.stderr)
        return 1
    doc = json.loads(path.read_text())
    print(json.dumps(doc, indent=1) if args.json else render(doc))
    return 0
