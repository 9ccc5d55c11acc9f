"""``cchet bench seal``: the sealed-stream benchmark from the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    bench = sub.add_parser("bench", help="measure throughput against a same-run baseline")
    which = bench.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True)
    seal = which.add_parser("seal", help="seal/unseal GB/s and ratios against one-shot AESGCM.encrypt_into")
    seal.add_argument("--quick", action="store_true", help="1 MiB and 16 MiB only")
    seal.add_argument("--repeats", type=int, default=7, help="samples per figure (>= 5)")
    seal.add_argument("--json", type=Path, help="also write the result document here")
    seal.set_defaults(run=_seal)
    broker = which.add_parser("broker", help="key-release latency: first release, cached re-use, 32 clients")
    broker.add_argument("--repeats", type=int, default=15)
    broker.add_argument("--json", type=Path, help="also write the result document here")
    broker.set_defaults(run=_broker)


def _broker(args: argparse.Namespace) -> int:
    from cchet.bench import broker

    result = broker.run(repeats=args.repeats)
    for name, value in result["rows"].items():
        print(f"{name:45s} {value:10.3f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _seal(args: argparse.Namespace) -> int:
    from cchet.bench import seal

    sizes = (1 << 20, 16 << 20) if args.quick else seal.DEFAULT_SIZES
    result = seal.run(sizes, repeats=args.repeats)
    print(seal.table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0
