"""``cchet bench seal|broker|tasks``: run a benchmark, print its table, and write its JSON result.

Every benchmark module offers ``run(quick=..., repeats=...) -> dict`` and ``table(result) -> str``; the
scripts in ``bench/`` call this command with their default result path.
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

__all__ = ["BENCHMARKS", "register"]

BENCHMARKS = {
    "seal": "seal/unseal GB/s and ratios against one-shot AESGCM.encrypt_into",
    "broker": "key-release latency: first release, cached re-use, 32 concurrent clients",
    "tasks": "confidential vs plain Ray task round trip, with the four seal/open passes alone",
    "attest": "parse/verify/appraise per evidence kind; Intel quote verification cold and warm vs dcap-qvl",
}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    bench = sub.add_parser("bench", help="measure against a baseline run in the same process")
    which = bench.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True)
    for name, help_text in BENCHMARKS.items():
        p = which.add_parser(name, help=help_text)
        p.add_argument("--quick", action="store_true", help="fewer sizes (a smoke run)")
        p.add_argument("--repeats", type=int, default=7, help="samples per figure (>= 5)")
        p.add_argument("--json", type=Path, help="write the result document here")
        p.set_defaults(run=_run, benchmark=name)


def _run(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"cchet.bench.{args.benchmark}")
    result = module.run(quick=args.quick, repeats=args.repeats)
    print(module.table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0
