"""``cchet info``: this machine's CPU TEE, NVIDIA GPUs and CC state, and which protections hold here."""

from __future__ import annotations

import argparse
import json

from cchet.platform.info import probe

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    info = sub.add_parser("info", help="show this machine's TEE, GPUs, CC state and what protections hold")
    info.add_argument("--json", action="store_true", help="print the findings as JSON")
    info.set_defaults(run=_info)


def _info(args: argparse.Namespace) -> int:
    found = probe()
    print(json.dumps(found.to_dict(), indent=2) if args.json else found.render())
    return 0
