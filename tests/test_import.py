"""``import cchet`` imports neither Ray nor CuPy nor pynvml, starts no thread, and prints nothing."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys, threading
before = set(sys.modules)
threads_before = threading.active_count()
import cchet
import cchet.hazmat, cchet.crypto, cchet.cli
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"ray", "cupy", "pynvml", "torch"})
print(json.dumps({"heavy": heavy, "threads": threading.active_count() - threads_before}), file=sys.stderr)
"""


def test_import_is_light_and_silent() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout == "", f"import printed: {out.stdout!r}"
    result = json.loads(out.stderr.strip().splitlines()[-1])
    assert result["heavy"] == [], result["heavy"]
    assert result["threads"] == 0
