"""A confidential GPU task round trip against the same plain Ray GPU task (the device script's ``task`` stage).

Both tasks take a float32 array, put it on the task's GPU, double it there and return it: the plain one as
``ray.remote(num_gpus=1, max_calls=0)`` (warm workers, as cchet keeps for GPU tasks) with ``cupy.asarray`` /
``cupy.asnumpy`` (the bytes cross PCIe as they are), the confidential one as ``@cchet.remote(gpu="cc")`` (the
argument reaches the GPU sealed and is opened by the kernel; the result is sealed by the kernel and opened in
the driver). Timed in alternating blocks after a warm-up, as :mod:`cchet.bench.tasks` does, for 1 MiB and 64
MiB. On a machine without CuPy both run on the SIMULATED GPU of a ``tdx+gpu`` session (the plain task then
doubles a NumPy array on the CPU) and the JSON says so: the figure is cchet's CPU-side cost, not a GPU
measurement.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from cchet.bench.tasks import _in_blocks
from cchet.bench.timing import machine_info

__all__ = ["bench_task_round_trip"]

SIZES = (1 << 20, 64 << 20)


def _double(x: Any) -> Any:
    if importlib.util.find_spec("cupy") is None:
        return np.asarray(x) * 2
    import cupy

    return cupy.asnumpy(cupy.asarray(x) * 2)


def _plain(task: Any, x: np.ndarray) -> Any:
    import ray

    return ray.get(task.remote(x))


def _confidential(task: Any, x: np.ndarray) -> Any:
    import cchet

    return cchet.get(task.remote(x))


def bench_task_round_trip(out_path: str | os.PathLike[str], *, repeats: int = 5) -> dict[str, Any]:
    """Measure both round trips, write the result document to ``out_path`` and return it. Starts its own
    session: a real one where the node attests (a TEE with a CC-mode GPU), else a SIMULATED ``tdx+gpu`` one."""
    import ray

    import cchet

    simulated = importlib.util.find_spec("cupy") is None
    with tempfile.TemporaryDirectory(prefix="cchet-gpu-bench-") as tmp:
        session = cchet.init(
            simulate="tdx+gpu" if simulated else None, audit_log=Path(tmp) / "audit.jsonl", num_gpus=1
        )
        try:
            plain = ray.remote(num_gpus=1, max_calls=0)(_double)  # warm workers, as cchet keeps for GPU tasks
            confidential = cchet.remote(gpu="cc")(_double)
            rows = []
            for size in SIZES:
                x = np.ones(size // 4, dtype=np.float32)
                base, ours = _in_blocks(
                    [functools.partial(_plain, plain, x), functools.partial(_confidential, confidential, x)], repeats
                )
                rows.append({"bytes": size, "plain_ray_s": base, "cchet_s": ours, "ratio": ours / base})
        finally:
            cchet.shutdown()
    doc = {
        "benchmark": "gpu_task_round_trip",
        "baseline": "the same task as ray.remote(num_gpus=1), same session",
        "method": f"median of {repeats} calls in each of three alternating blocks after a warm-up call",
        "simulated": simulated,
        "session": repr(session),
        "machine": machine_info(),
        "rows": rows,
    }
    Path(out_path).write_text(json.dumps(doc, indent=1))
    return doc
