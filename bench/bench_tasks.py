"""Confidential Ray task round trip against plain Ray (see cchet.bench.tasks).

python bench/bench_tasks.py [--out bench/results/tasks.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cchet.bench import tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "tasks.json")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    result = tasks.run(repeats=args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(tasks.table(result))
    first_ms = result["first_call_new_worker_s"] * 1e3
    print(f"\nfirst call on a new worker (attestation included): {first_ms:.0f} ms")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
