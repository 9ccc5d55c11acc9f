"""The 'seal' benchmark (cchet/bench/seal.py): prints its table and writes bench/results/seal.json.

python bench/bench_seal.py [--quick] [--repeats N] [--json PATH]
"""

import sys
from pathlib import Path

from cchet.cli import main

if __name__ == "__main__":
    default = ["--json", str(Path(__file__).parent / "results" / "seal.json")]
    sys.exit(main(["bench", "seal", *default, *sys.argv[1:]]))
