"""Seal/unseal throughput as ratios against one-shot AESGCM.encrypt_into (see cchet.bench.seal).

    python bench/bench_seal.py [--quick] [--out bench/results/seal.json]

Writes the JSON result and prints a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cchet.bench import seal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "seal.json")
    parser.add_argument("--quick", action="store_true", help="only 1 MiB and 16 MiB (a smoke run)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    sizes = (1 << 20, 16 << 20) if args.quick else seal.DEFAULT_SIZES
    result = seal.run(sizes, repeats=args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(seal.table(result))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
