"""Confidential Ray task round trip against plain Ray (DESIGN.md section 8).

The same identity task runs as plain ``ray.remote`` (the baseline) and as ``@cchet.remote`` on a warm worker,
in one session, for 1 KiB, 1 MiB, 64 MiB and 256 MiB of numpy data, in blocks that alternate (three rounds of
a plain block and a cchet block), so that a slow spell of a shared machine falls on both and each block runs on
a warm worker. Alongside, the four seal/open passes a confidential round
trip makes (seal the argument, open it, seal the result, open it) are timed alone on the same data. Goals: at
1 KiB cchet adds <= 1 ms; at 1 MiB the time it adds is <= 1.5 x the four passes, at 64 MiB <= 1.15 x. The
first call of a new worker (attestation and key release included) is reported separately, and so is the
first call of another function on a warm worker (its sealed code fetched and opened once).
"""

from __future__ import annotations

import functools
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from cchet.bench.timing import machine_info

__all__ = ["DEFAULT_SIZES", "run"]

DEFAULT_SIZES = (1 << 10, 1 << 20, 64 << 20, 256 << 20)
SETTLE_S = 10.0


ROUNDS = 3


def _median_s(fn: Callable[[], object], repeats: int) -> float:
    return _in_blocks([fn], repeats)[0]


def _in_blocks(fns: list[Callable[[], object]], repeats: int) -> list[float]:
    """Median seconds of each of ``fns``: :data:`ROUNDS` rounds, each running every one of ``fns`` in a block of
    ``repeats`` calls after a warm-up call."""
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(ROUNDS):
        for fn, times in zip(fns, samples, strict=True):
            fn()
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
    return [statistics.median(times) for times in samples]


def _settle(plain: Any, confidential: Any, seconds: float = SETTLE_S) -> None:
    """Run both round trips until ``seconds`` have passed: Ray starts its pool of worker processes after
    ``init``, which keeps both cores of a small machine busy for a while."""
    small = np.zeros(1 << 10, dtype=np.uint8)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        _plain_round_trip(plain, small)
        _cchet_round_trip(confidential, small)


def _repeats(n: int, repeats: int) -> int:
    """More samples for small sizes, whose medians are noisier on a shared machine."""
    return repeats * (10 if n <= 1 << 10 else 4 if n <= 1 << 20 else 1)


def _plain_round_trip(fn: Any, data: np.ndarray) -> object:
    import ray

    return ray.get(fn.remote(data))


def _cchet_round_trip(fn: Any, data: np.ndarray) -> object:
    import cchet

    return cchet.get(fn.remote(data))


def _four_passes(key: Any, data: np.ndarray) -> Callable[[], object]:
    import cchet

    def seal(src: np.ndarray, ctx: bytes) -> np.ndarray:
        out = np.empty(cchet.sealed_size(src.nbytes), dtype=np.uint8)
        cchet.seal_into(key, src, out, context=ctx)
        return out

    def run() -> None:  # fresh output buffers each pass, as the runtime allocates them
        opened = np.empty_like(data)
        cchet.unseal_into(key, seal(data, b"arg"), opened, context=b"arg")
        cchet.unseal_into(key, seal(opened, b"ret"), np.empty_like(data), context=b"ret")

    return run


def run(sizes: tuple[int, ...] | None = None, repeats: int = 7, quick: bool = False) -> dict[str, Any]:
    """Measure every size (``quick``: 1 KiB and 1 MiB only); returns the result document."""
    sizes = sizes or ((1 << 10, 1 << 20) if quick else DEFAULT_SIZES)
    import ray

    import cchet

    rows = []
    with tempfile.TemporaryDirectory(prefix="cchet-bench-") as tmp:
        session = cchet.init(simulate="tdx", num_cpus=2, _temp_dir=tmp)
        try:

            @ray.remote
            def plain(x: Any) -> Any:
                return x

            @cchet.remote
            def confidential(x: Any) -> Any:
                return x

            @cchet.remote
            def another(x: Any) -> Any:
                return x

            start = time.perf_counter()
            cchet.get(confidential.remote(np.zeros(8)))
            first_call = time.perf_counter() - start
            start = time.perf_counter()
            cchet.get(another.remote(np.zeros(8)))
            first_code = time.perf_counter() - start
            _settle(plain, confidential)
            for n in sizes:
                data = np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8)
                base, conf = _in_blocks(
                    [
                        functools.partial(_plain_round_trip, plain, data),
                        functools.partial(_cchet_round_trip, confidential, data),
                    ],
                    _repeats(n, repeats),
                )
                passes = _median_s(_four_passes(session.job_key, data), _repeats(n, repeats))
                rows.append(
                    {
                        "size": n,
                        "plain_s": base,
                        "confidential_s": conf,
                        "added_s": conf - base,
                        "four_passes_s": passes,
                        "added_over_passes": (conf - base) / passes,
                        "ratio": base / conf,
                    }
                )
        finally:
            cchet.shutdown()
    return {
        "benchmark": "tasks",
        "baseline": "the same identity task as plain ray.remote, same session, warm worker",
        "method": (
            f"{ROUNDS} rounds of a plain block and a cchet block of {repeats} calls each (x10 at 1 KiB, x4 at 1 MiB), "
            f"each after a warm-up call, median over all; started after {SETTLE_S:.0f} s of both round trips; four "
            "seal/open passes timed alone on the same data"
        ),
        "goals": {"added_ms_at_1KiB": 1.0, "added_over_passes_at_1MiB": 1.5, "added_over_passes_at_64MiB": 1.15},
        "first_call_new_worker_s": first_call,
        "first_call_of_another_function_s": first_code,
        "evidence": "SIMULATED TDX (key release over loopback HTTP, full appraisal)",
        "machine": machine_info(),
        "rows": rows,
    }


def table(result: dict[str, Any]) -> str:
    """A Markdown table of a result document."""
    lines = [
        "| size | plain ms | cchet ms | added ms | four passes ms | added / passes |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        n = r["size"]
        label = f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"
        lines.append(
            f"| {label} | {r['plain_s'] * 1e3:.2f} | {r['confidential_s'] * 1e3:.2f} "
            f"| {r['added_s'] * 1e3:.2f} | {r['four_passes_s'] * 1e3:.2f} | {r['added_over_passes']:.2f} |"
        )
    first = result["first_call_new_worker_s"] * 1e3
    code = result["first_call_of_another_function_s"] * 1e3
    return "\n".join(lines) + (
        f"\n\nfirst call on a new worker (attestation and key release): {first:.0f} ms; first call of another "
        f"function on a warm worker (attestation for its ticket, its sealed code fetched and opened): {code:.0f} ms"
    )
