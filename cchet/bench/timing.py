"""Timing primitives: interleaved medians and the description of the machine a result came from."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["interleaved_medians", "machine_info"]


def _sample(fn: Callable[[], object], loops: int) -> float:
    start = time.perf_counter()
    for _ in range(loops):
        fn()
    return (time.perf_counter() - start) / loops


def interleaved_medians(
    fns: dict[str, Callable[[], object]], *, repeats: int = 7, min_sample_s: float = 0.02
) -> dict[str, float]:
    """Median seconds per call of each function, sampled round-robin after one warm-up round.

    Each sample repeats a call enough times to last ``min_sample_s``, so tiny inputs are not timer noise.
    """
    if repeats < 5:
        raise ValueError("use at least 5 repeats: medians of fewer samples are noise")
    loops = {}
    for name, fn in fns.items():
        once = _sample(fn, 1)  # warm-up
        loops[name] = max(1, int(min_sample_s / max(once, 1e-9)))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(_sample(fn, loops[name]))
    return {name: statistics.median(values) for name, values in samples.items()}


def _git_sha() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """Where a result was measured: CPU, core counts, Python and crypto library versions, git SHA."""
    import cryptography
    from cryptography.hazmat.backends.openssl import backend as openssl

    from cchet._version import __version__

    return {
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cores_online": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "cryptography": cryptography.__version__,
        "openssl": openssl.openssl_version_text(),
        "cchet": __version__,
        "git_sha": _git_sha(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
