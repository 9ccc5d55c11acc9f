"""A confidential pipeline across a CPU TEE and a confidential GPU: preprocess in a TEE, multiply on the GPU,
come back sealed.

    python examples/gpu_pipeline.py

Runs on any machine: the nodes are a SIMULATED Intel TDX guest and a SIMULATED TDX guest with a SIMULATED
confidential GPU (simulated TEEs and GPUs protect nothing; on a TDX or SEV-SNP machine with an H100 in CC mode
the same code runs on real attestation and the real kernels). It shows:

1. ``cchet.init(simulate=["tdx", "tdx+gpu"])`` attests both nodes, the GPU's report included.
2. ``prepare`` runs in a TDX guest; its result stays sealed in Ray's object store.
3. ``layer`` is a ``gpu="cc"`` task: its arguments go from the object store to the GPU still sealed and are
   opened by the kernel inside it (they arrive as CuPy arrays -- here SIMULATED device arrays); its device
   result is sealed by the kernel before it leaves the GPU.
4. The driver opens the result (``cchet.get(y)``; ``cchet.get(y, device=0)`` opens it on a local GPU).
5. A GPU task that lands on a GPU other than the attested one gets no key.
6. The bounce-buffer channel's per-stage statistics for one transfer.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

import cchet


@cchet.remote(tee="tdx")
def prepare(raw: np.ndarray) -> np.ndarray:
    """Standardise each column inside the CPU TEE."""
    return ((raw - raw.mean(axis=0)) / raw.std(axis=0)).astype(np.float32)


@cchet.remote(gpu="cc")
def layer(x: Any, w: Any) -> Any:
    """One dense layer on the GPU: x and w arrive as device arrays, opened inside the GPU."""
    print(f"layer: x is a {type(x).__name__} {x.shape}, on the GPU")
    return np.maximum(x @ w, 0)  # with CuPy: cupy.maximum; the SIMULATED device arrays are numpy underneath


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="cchet-gpu-") as tmp:
        session = cchet.init(simulate=["tdx", "tdx+gpu"], audit_log=Path(tmp) / "audit.jsonl")
        print(f"\n1. attested nodes: {session.registry.describe()}")

        rng = np.random.default_rng(3)
        raw = rng.normal(10, 3, size=(4096, 256))
        w = rng.normal(0, 0.1, size=(256, 128)).astype(np.float32)
        features = prepare.remote(raw)
        print(f"2. prepared in a TDX guest, still sealed: {features!r}")

        y = layer.remote(features, cchet.put(w))
        out = cchet.get(y)
        expected = np.maximum(((raw - raw.mean(axis=0)) / raw.std(axis=0)).astype(np.float32) @ w, 0)
        correct = bool(np.allclose(out, expected, atol=1e-3))
        print(f"3-4. GPU layer -> {type(out).__name__} {out.shape}, correct: {correct}")

        elsewhere = layer.options(runtime_env={"env_vars": {"CCHET_SIM_GPU_IDENTITY": "ee" * 32}})
        try:
            cchet.get(elsewhere.remote(features, w))
        except cchet.KeyReleaseDenied as e:
            print(f"5. a task on an unattested GPU: {e.reasons[-1]}")

        from cchet.gpu.channel import BounceChannel
        from cchet.runtime.devices import simulated_gpu

        with BounceChannel(simulated_gpu()) as channel:
            channel.to_host(channel.to_device(raw.astype(np.float32)))
            print(f"6. {channel.last_stats}")
        cchet.shutdown()


if __name__ == "__main__":
    main()
