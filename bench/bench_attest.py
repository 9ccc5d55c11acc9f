"""The 'attest' benchmark (cchet/bench/attest.py): prints its table and writes bench/results/attest.json.

python bench/bench_attest.py [--quick] [--repeats N] [--json PATH]
"""

import sys
from pathlib import Path

from cchet.cli import main

if __name__ == "__main__":
    default = ["--json", str(Path(__file__).parent / "results" / "attest.json")]
    sys.exit(main(["bench", "attest", *default, *sys.argv[1:]]))
