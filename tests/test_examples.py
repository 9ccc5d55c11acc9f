"""The quickstart that ``make demo`` runs works end to end (a real local Ray in a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def _run(example: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Runs ``examples/<example>`` as a fresh user would (no RAY_/CCHET_ variables, an empty home); asserts it
    exits 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "CCHET_"))}
    env |= {"HOME": str(tmp_path), "RAY_USAGE_STATS_ENABLED": "0"}
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / example)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_quickstart(tmp_path: Path) -> None:
    out = _run("quickstart.py", tmp_path)
    assert "SIMULATED tdx, snp" in out.stderr
    for line in ("1. cchet", "2. confidential pipeline -> {'mean_risk'", "3. refused placement", "intact: True"):
        assert line in out.stdout, out.stdout
    assert "score: 200000 records, inside the TEE" in out.stdout


def test_gpu_pipeline(tmp_path: Path) -> None:
    out = _run("gpu_pipeline.py", tmp_path)
    assert "SIMULATED tdx, tdx+gpu" in out.stderr
    for line in (
        "1. attested nodes:",
        "2. prepared in a TDX guest, still sealed",
        "layer: x is a SimulatedDeviceArray (4096, 256), on the GPU",
        "3-4. GPU layer -> ndarray (4096, 128), correct: True",
        "5. a task on an unattested GPU: the call needs gpu='cc' and runs on GPU eeeeeeeeeeeeeeee...",
        "6. BounceChannel device to host (opened on CPU threads) on SIMULATED GPU 0",
    ):
        assert line in out.stdout, out.stdout
