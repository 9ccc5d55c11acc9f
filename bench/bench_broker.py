"""Key-release latency: first release, cached re-use, 32 concurrent clients (see cchet.bench.broker).

python bench/bench_broker.py [--out bench/results/broker.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cchet.bench import broker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "broker.json")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    result = broker.run(repeats=args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name, value in result["rows"].items():
        print(f"{name:45s} {value:10.3f}")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
