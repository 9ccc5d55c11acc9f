"""GPU benchmarks (DESIGN.md section 8), each as a ratio against a baseline timed in the same run.

    python bench/bench_gpu.py OUT.json [--size-mib 1024] [--repeats 7] [--threads 1,2,4,8,16]
    python bench/bench_gpu.py OUT.json --fake      # SIMULATED device, tiny sizes: checks this script only

Figures (median of --repeats samples after one warm-up; baseline and candidate interleaved):

* kernel seal / open GB/s on --size-mib of device memory in 64 KiB, 1 MiB and 16 MiB chunks, against a
  device-to-device copy of the same bytes (goal: open >= 100 GB/s on an H100);
* BounceChannel host to device and device to host for each CPU thread count, against a plain pinned
  ``cudaMemcpyAsync`` of the same bytes (goal >= 0.8x);
* pre-sealed host to device (no CPU crypto) against the same plain pinned copy (goal >= 0.9x).

Device times come from CUDA events; channel times are wall clock around a synchronised transfer. The
JSON carries the device name, CC state, machine, and every sample. It runs only where a GPU and CuPy are
(or with --fake, whose numbers say nothing about a GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cchet import seal
from cchet.bench.timing import machine_info
from cchet.crypto import format as fmt
from cchet.gpu.channel import BounceChannel
from cchet.gpu.device import Batch
from cchet.gpu.geometry import plan
from cchet.gpu.schedule import StreamSchedule
from cchet.hazmat.keys import DataKey

CHUNKS = (64 << 10, 1 << 20, 16 << 20)


def interleaved(fns: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each function (which returns its own measured time), round-robin."""
    for fn in fns.values():
        fn()  # warm-up (compiles kernels, faults in memory)
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            samples[k].append(fn())
    return samples


def summary(nbytes: int, samples: dict[str, list[float]], baseline: str) -> dict[str, Any]:
    med = {k: statistics.median(v) for k, v in samples.items()}
    return {
        "bytes": nbytes,
        "median_s": med,
        "gb_per_s": {k: nbytes / s / 1e9 for k, s in med.items()},
        "ratio_to_baseline": {k: med[baseline] / s for k, s in med.items()},
        "baseline": baseline,
        "samples_s": samples,
    }


def cuda_timer(cp: Any, stream: Any, fn: Callable[[], object]) -> Callable[[], float]:
    def timed() -> float:
        start = stream.record()
        fn()
        end = stream.record()
        end.synchronize()
        return float(cp.cuda.get_elapsed_time(start, end)) / 1e3

    return timed


def bench_kernel_chunks(cp: Any, dev: Any, plain: Any, cs: int, repeats: int) -> dict[str, Any]:
    """Kernel seal and open of ``plain`` (device bytes) in chunks of ``cs``, against a D2D copy."""
    key = DataKey.generate()
    size = int(plain.nbytes)
    header = fmt.Header(fmt.chunk_log2_of(cs), key.key_id, os.urandom(32), os.urandom(7), size)
    chunks = fmt.chunk_count(size, cs)
    geometry = plan(chunks, cs)
    gcm = dev.gcm(StreamSchedule.for_stream(key, header, b"", geometry), cs)
    batch = Batch(0, chunks, size - (chunks - 1) * cs, True)
    sealed = cp.empty(size + 16 * chunks, dtype=cp.uint8)
    back = cp.empty(size, dtype=cp.uint8)
    copy_dst = cp.empty(size, dtype=cp.uint8)
    s = dev.stream()
    gcm.seal(plain, sealed, batch, s)
    s.synchronize()
    verdicts: list[Any] = []

    def d2d() -> None:
        cp.cuda.runtime.memcpyAsync(copy_dst.data.ptr, plain.data.ptr, size, 3, s.stream.ptr)

    def seal_() -> None:
        gcm.seal(plain, sealed, batch, s)

    def open_() -> None:
        verdicts.append(gcm.open(sealed, back, batch, s))

    samples = interleaved(
        {
            "d2d_copy": cuda_timer(cp, s.stream, d2d),
            "seal": cuda_timer(cp, s.stream, seal_),
            "open": cuda_timer(cp, s.stream, open_),
        },
        repeats,
    )
    assert all(v.all_authentic() for v in verdicts) and bool(cp.array_equal(back, plain))
    geo = {"lanes": geometry.lanes, "segment_blocks": geometry.segment_blocks, "segments": geometry.segments}
    return summary(size, samples, "d2d_copy") | {"geometry": geo | {"chunks": chunks}}


def bench_kernels(cp: Any, size: int, repeats: int) -> dict[str, Any]:
    from cchet.gpu.cuda_device import CudaDevice

    dev = CudaDevice(0)
    plain = cp.random.randint(0, 256, size, dtype=cp.uint8)
    return {f"chunk_{cs}": bench_kernel_chunks(cp, dev, plain, cs, repeats) for cs in CHUNKS}


def wall(fn: Callable[[], object]) -> Callable[[], float]:
    def timed() -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return timed


def bench_channel_threads(
    ch: BounceChannel, data: Any, blob: bytes, key: DataKey, pinned_copy: Callable[[], float], *, repeats: int
) -> dict[str, Any]:
    """One channel configuration: H2D, D2H and pre-sealed H2D against a plain pinned copy."""
    dev_arr = ch.to_device(data)
    samples = interleaved(
        {
            "pinned_copy": pinned_copy,
            "h2d_channel": wall(lambda: ch.to_device(data)),
            "d2h_channel": wall(lambda: ch.to_host(dev_arr)),
            "h2d_presealed": wall(lambda: ch.to_device(blob, key=key)),
        },
        repeats,
    )
    stats = ch.last_stats
    return summary(int(data.nbytes), samples, "pinned_copy") | {
        "last_stats_gib_per_s": stats.gib_per_s if stats else None,
        "simulated": ch.device.simulated,
    }


def bench_channel(
    device: Any,
    size: int,
    pinned_copy: Callable[[], float],
    *,
    repeats: int,
    threads: list[int],
    chunk_size: int,
) -> dict[str, Any]:
    data = np.frombuffer(os.urandom(size), dtype=np.uint8)
    key = DataKey.generate()
    blob = seal(key, data, chunk_size=chunk_size)
    out: dict[str, Any] = {}
    for t in threads:
        with BounceChannel(device, slots=4, slot_chunks=4, chunk_size=chunk_size, streams=2, threads=t) as ch:
            out[f"threads_{t}"] = bench_channel_threads(ch, data, blob, key, pinned_copy, repeats=repeats)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path, help="JSON file to write")
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--channel-mib", type=int, default=256, help="bytes per channel transfer")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", default="1,2,4,8,16")
    parser.add_argument("--chunk-size", type=int, default=1 << 20, help="channel chunk size")
    parser.add_argument("--fake", action="store_true", help="SIMULATED device and tiny sizes (script check)")
    args = parser.parse_args()
    if args.repeats < 5:
        parser.error("use --repeats >= 5: medians of fewer samples are noise")
    threads = [int(t) for t in args.threads.split(",")]
    result: dict[str, Any] = {"machine": machine_info(), "args": vars(args) | {"out": str(args.out)}}

    if args.fake:
        from cchet.gpu.fake_device import FakeDevice

        device: Any = FakeDevice()
        size = 64 << 10
        host = np.zeros(size, dtype=np.uint8)
        target = device.empty(size)

        def fake_copy() -> float:
            start = time.perf_counter()
            target[:] = host
            return time.perf_counter() - start

        result["device"] = {"name": device.name, "simulated": True}
        result["channel"] = bench_channel(
            device, size, fake_copy, repeats=args.repeats, threads=threads[:2], chunk_size=4096
        )
    else:
        try:
            import cupy as cp
        except ImportError:
            print(
                "bench_gpu: needs CuPy and an NVIDIA GPU (pip install 'cchet[gpu]'); try --fake",
                file=sys.stderr,
            )
            return 2
        from cchet.platform.info import probe

        found = probe()
        result["device"] = {
            "name": found.gpus[0].name if found.gpus else "?",
            "simulated": False,
            "statements": found.statements(),
            "driver": found.driver,
        }
        result["kernels"] = bench_kernels(cp, args.size_mib << 20, args.repeats)
        size = args.channel_mib << 20
        host = np.frombuffer(cp.cuda.alloc_pinned_memory(size), dtype=np.uint8, count=size)
        host[:] = 1
        target = cp.empty(size, dtype=cp.uint8)
        stream = cp.cuda.Stream(non_blocking=True)

        def pinned_copy() -> float:
            start = time.perf_counter()
            cp.cuda.runtime.memcpyAsync(target.data.ptr, host.ctypes.data, size, 1, stream.ptr)
            stream.synchronize()
            return time.perf_counter() - start

        result["channel"] = bench_channel(
            0, size, pinned_copy, repeats=args.repeats, threads=threads, chunk_size=args.chunk_size
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for section in ("kernels", "channel"):
        for name, r in result.get(section, {}).items():
            ratios = ", ".join(f"{k} {v:.2f}x" for k, v in r["ratio_to_baseline"].items())
            rates = ", ".join(f"{k} {v:.1f}" for k, v in r["gb_per_s"].items())
            print(f"{section}/{name}: GB/s {rates}; vs {r['baseline']}: {ratios}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
