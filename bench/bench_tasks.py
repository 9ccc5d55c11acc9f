"""The 'tasks' benchmark (cchet/bench/tasks.py): prints its table and writes bench/results/tasks.json.

python bench/bench_tasks.py [--quick] [--repeats N] [--json PATH]
"""

import sys
from pathlib import Path

from cchet.cli import main

if __name__ == "__main__":
    default = ["--json", str(Path(__file__).parent / "results" / "tasks.json")]
    sys.exit(main(["bench", "tasks", *default, *sys.argv[1:]]))
