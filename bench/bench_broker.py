"""The 'broker' benchmark (cchet/bench/broker.py): prints its table and writes bench/results/broker.json.

python bench/bench_broker.py [--quick] [--repeats N] [--json PATH]
"""

import sys
from pathlib import Path

from cchet.cli import main

if __name__ == "__main__":
    default = ["--json", str(Path(__file__).parent / "results" / "broker.json")]
    sys.exit(main(["bench", "broker", *default, *sys.argv[1:]]))
