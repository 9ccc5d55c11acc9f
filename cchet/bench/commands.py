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


def _seal(args: argparse.Namespace) -> int:
    from cchet.bench import seal

    sizes = (1 << 20, 16 << 20) if args.quick else seal.DEFAULT_SIZES
    result = seal.run(sizes, repeats=args.repeats)
    print(seal.table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0
