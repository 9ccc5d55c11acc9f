"""GPU benchmarks (DESIGN.md section 8), each as a ratio against a baseline timed in the same run.

    python bench/bench_gpu.py OUT.json [--only kernels|channel] [--size-mib 1024] [--chunks 64K,1M,16M,64M]
                              [--channel-mib 256] [--slots 4,8,auto] [--threads 1,2,4,8,16] [--budget-s 90]
    python bench/bench_gpu.py OUT.json --fake      # SIMULATED device, tiny sizes: checks this script only

Figures (median of --repeats samples after one warm-up; baseline and candidates interleaved):

* kernel seal / open GB/s on --size-mib of device memory in each --chunks chunk size (default 64 KiB,
  1 MiB, 16 MiB and 64 MiB), against a device-to-device copy of the same bytes (goal: open >= 100 GB/s
  on an H100);
* BounceChannel host to device and device to host for each (--slots, --threads) pair, against a plain
  pinned ``cudaMemcpyAsync`` of the same bytes in the same direction (goal >= 0.8x), and pre-sealed host
  to device (no CPU crypto) against the same host-to-device copy (goal >= 0.9x). ``auto`` slots is the
  channel's own default for that thread count. The sweep stops starting new configurations when
  --budget-s would be exceeded and lists the ones it left out.

Device times come from events on the stream; channel times are wall clock around a synchronised
transfer. The JSON (rewritten after every figure, atomically, so an interrupted run keeps what finished)
carries the device name, CC state, machine, and every sample. It runs only where a GPU and CuPy are (exit
status 3 and a ``stage skipped:`` line otherwise) or with --fake, whose numbers say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import inspect
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

CHUNKS = (64 << 10, 1 << 20, 16 << 20, 64 << 20)
EXIT_CANNOT_RUN = 3
_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int:
    """``64K``, ``1M``, ``65536``: a byte count."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    if t and t[-1] in _UNITS:
        return int(t[:-1]) * _UNITS[t[-1]]
    return int(t)


def size_name(n: int) -> str:
    """``65536`` -> ``64K``, ``1048576`` -> ``1M``."""
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


def parse_slots(text: str) -> list[int | None]:
    """``4,8,auto``: slot counts, ``None`` for the channel's default."""
    return [None if s.strip() == "auto" else int(s) for s in text.split(",")]


def write_json(path: Path, obj: dict[str, Any]) -> None:
    """Write ``obj`` to ``path`` atomically (a temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def interleaved(fns: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each function (which returns its own measured time), round-robin."""
    for fn in fns.values():
        fn()  # warm-up (compiles kernels, faults in memory)
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            samples[k].append(fn())
    return samples


def summary(nbytes: int, samples: dict[str, list[float]], baselines: dict[str, str]) -> dict[str, Any]:
    """Medians, GB/s, and each candidate's speed relative to its baseline (``baselines``: candidate ->
    baseline; above 1 is faster than the baseline)."""
    med = {k: statistics.median(v) for k, v in samples.items()}
    return {
        "bytes": nbytes,
        "median_s": med,
        "gb_per_s": {k: nbytes / s / 1e9 if s > 0 else None for k, s in med.items()},
        "ratio_to_baseline": {k: med[b] / med[k] if med[k] > 0 else None for k, b in baselines.items()},
        "baseline": baselines,
        "samples_s": samples,
    }


def device_timer(stream: Any, fn: Callable[[], object]) -> Callable[[], float]:
    """Device seconds of ``fn``'s work on ``stream`` (events before and after it)."""

    def timed() -> float:
        start = stream.record()
        fn()
        end = stream.record()
        return float(end.seconds_since(start))

    return timed


def launch_options(gcm: Any) -> dict[str, Any]:
    """Launches here need no ordering against the caller's current stream (``join_caller``, where the
    kernels' glue has it)."""
    return {"join_caller": False} if "join_caller" in inspect.signature(gcm.seal).parameters else {}


def geometry_for(dev: Any, chunks: int, cs: int) -> Any:
    """The launch geometry the library would use on ``dev`` (its SM count and occupancy, when it has them)."""
    params = inspect.signature(plan).parameters
    extra: dict[str, int] = {}
    if "sms" in params and hasattr(dev, "sm_count"):
        extra["sms"] = int(dev.sm_count)
    if "blocks_per_sm" in params and hasattr(dev, "blocks_per_sm"):
        extra["blocks_per_sm"] = int(dev.blocks_per_sm)
    return plan(chunks, cs, **extra)


class Rig:
    """What the kernel benchmark needs beyond the Device protocol: random device bytes, a device-to-device
    copy on a stream, and a comparison; CuPy (``cp``) or the SIMULATED device's numpy."""

    def __init__(self, dev: Any, cp: Any = None) -> None:
        self.dev = dev
        self.cp = cp

    def random(self, n: int) -> Any:
        if self.cp is not None:
            return self.cp.random.randint(0, 256, n, dtype=self.cp.uint8)
        out = self.dev.empty(n)
        out[:] = np.random.default_rng().integers(0, 256, n, dtype=np.uint8)
        return out

    def d2d(self, dst: Any, src: Any, stream: Any) -> None:
        if self.cp is not None:
            self.cp.cuda.runtime.memcpyAsync(dst.data.ptr, src.data.ptr, int(src.nbytes), 3, stream.stream.ptr)
        else:
            self.dev.upload(dst, src, stream)  # the fake device copies array to array on the stream

    def equal(self, a: Any, b: Any) -> bool:
        return bool(self.cp.array_equal(a, b)) if self.cp is not None else bool(np.array_equal(a, b))


def bench_kernel_chunks(rig: Rig, plain: Any, cs: int, repeats: int) -> dict[str, Any]:
    """Kernel seal and open of ``plain`` (device bytes) in chunks of ``cs``, against a D2D copy."""
    dev = rig.dev
    key = DataKey.generate()
    size = int(plain.nbytes)
    header = fmt.Header(fmt.chunk_log2_of(cs), key.key_id, os.urandom(32), os.urandom(7), size)
    chunks = fmt.chunk_count(size, cs)
    geometry = geometry_for(dev, chunks, cs)
    gcm = dev.gcm(StreamSchedule.for_stream(key, header, b"", geometry), cs)
    opts = launch_options(gcm)
    batch = Batch(0, chunks, size - (chunks - 1) * cs, True)
    sealed = dev.empty(size + 16 * chunks)
    back = dev.empty(size)
    copy_dst = dev.empty(size)
    s = dev.stream()
    gcm.seal(plain, sealed, batch, s, **opts)
    s.synchronize()
    verdicts: list[Any] = []

    samples = interleaved(
        {
            "d2d_copy": device_timer(s, lambda: rig.d2d(copy_dst, plain, s)),
            "seal": device_timer(s, lambda: gcm.seal(plain, sealed, batch, s, **opts)),
            "open": device_timer(s, lambda: verdicts.append(gcm.open(sealed, back, batch, s, **opts))),
        },
        repeats,
    )
    s.synchronize()
    if not all(v.all_authentic() for v in verdicts) or not rig.equal(back, plain):
        raise AssertionError(f"chunk size {cs}: the kernels' round trip is wrong")
    geo = {"lanes": geometry.lanes, "segment_blocks": geometry.segment_blocks, "segments": geometry.segments}
    return summary(size, samples, {"seal": "d2d_copy", "open": "d2d_copy"}) | {"geometry": geo | {"chunks": chunks}}


def bench_kernels(
    rig: Rig, size: int, chunk_sizes: list[int], repeats: int, progress: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    plain = rig.random(size)
    out: dict[str, Any] = {}
    for cs in chunk_sizes:
        out[f"chunk_{cs}"] = bench_kernel_chunks(rig, plain, cs, repeats)
        progress(out)
    return out


def wall(fn: Callable[[], object]) -> Callable[[], float]:
    def timed() -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return timed


def bench_channel_config(
    ch: BounceChannel, data: Any, blob: bytes, key: DataKey, copies: dict[str, Callable[[], float]], *, repeats: int
) -> dict[str, Any]:
    """One channel configuration: H2D, D2H and pre-sealed H2D against plain pinned copies."""
    dev_arr = ch.to_device(data)
    host_out = np.empty_like(data)
    host_out[:] = 0  # faulted in once, reused: the channel is not charged for fresh pages
    to_host_out = "out" in inspect.signature(ch.to_host).parameters

    def d2h() -> object:
        return ch.to_host(dev_arr, out=host_out) if to_host_out else ch.to_host(dev_arr)

    samples = interleaved(
        {
            "pinned_h2d": copies["h2d"],
            "pinned_d2h": copies["d2h"],
            "h2d_channel": wall(lambda: ch.to_device(data)),
            "d2h_channel": wall(d2h),
            "h2d_presealed": wall(lambda: ch.to_device(blob, key=key)),
        },
        repeats,
    )
    stats = ch.last_stats
    baselines = {"h2d_channel": "pinned_h2d", "d2h_channel": "pinned_d2h", "h2d_presealed": "pinned_h2d"}
    return summary(int(data.nbytes), samples, baselines) | {
        "slots": ch.slots,
        "threads": ch.threads,
        "last_stats_gib_per_s": stats.gib_per_s if stats else None,
        "simulated": ch.device.simulated,
    }


def bench_channel(
    device: Any,
    size: int,
    copies: dict[str, Callable[[], float]],
    *,
    repeats: int,
    slots: list[int | None],
    threads: list[int],
    chunk_size: int,
    budget_s: float | None,
    progress: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """The slots x threads sweep; a configuration starts only if the last one's time still fits the budget."""
    data = np.frombuffer(os.urandom(size), dtype=np.uint8)
    key = DataKey.generate()
    blob = seal(key, data, chunk_size=chunk_size)
    out: dict[str, Any] = {"configs": {}, "skipped": [], "budget_s": budget_s, "chunk_size": chunk_size}
    started = time.monotonic()
    last = 0.0
    for n_slots in slots:
        for t in threads:
            name = f"slots_{n_slots or 'auto'}_threads_{t}"
            if budget_s is not None and time.monotonic() - started + last > budget_s:
                out["skipped"].append(name)
                continue
            t0 = time.monotonic()
            with BounceChannel(device, slots=n_slots, slot_chunks=4, chunk_size=chunk_size, streams=2, threads=t) as ch:
                out["configs"][name] = bench_channel_config(ch, data, blob, key, copies, repeats=repeats)
            last = time.monotonic() - t0
            out["seconds"] = time.monotonic() - started
            progress(out)
    out["seconds"] = time.monotonic() - started
    progress(out)
    return out


def num(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def headline(result: dict[str, Any]) -> str:
    parts = []
    kernels = result.get("kernels", {})
    if kernels:
        opens = ", ".join(
            f"{size_name(int(k.split('_')[1]))} {num(r['gb_per_s']['open'], '.1f')} "
            f"({num(r['ratio_to_baseline']['open'], '.2f')}x)"
            for k, r in kernels.items()
        )
        parts.append(f"open GB/s by chunk (vs d2d copy): {opens}")
    configs = result.get("channel", {}).get("configs", {})
    if configs:
        best = {
            d: max(configs.items(), key=lambda kv, d=d: kv[1]["ratio_to_baseline"][d] or 0.0)
            for d in ("h2d_channel", "d2h_channel")
        }
        parts.append(
            "best channel vs pinned copy: "
            + ", ".join(f"{d} {num(c['ratio_to_baseline'][d], '.2f')}x ({name})" for d, (name, c) in best.items())
        )
    skipped = result.get("channel", {}).get("skipped", [])
    if skipped:
        parts.append(f"{len(skipped)} channel configs left out for time")
    return "; ".join(parts) or "nothing measured"


def fake_copies(device: Any, size: int) -> dict[str, Callable[[], float]]:
    host = np.zeros(size, dtype=np.uint8)
    target = device.empty(size)

    def h2d() -> float:
        start = time.perf_counter()
        target[:] = host
        return time.perf_counter() - start

    def d2h() -> float:
        start = time.perf_counter()
        host[:] = target
        return time.perf_counter() - start

    return {"h2d": h2d, "d2h": d2h}


def pinned_copies(cp: Any, size: int) -> dict[str, Callable[[], float]]:
    host = np.frombuffer(cp.cuda.alloc_pinned_memory(size), dtype=np.uint8, count=size)
    host[:] = 1
    target = cp.empty(size, dtype=cp.uint8)
    stream = cp.cuda.Stream(non_blocking=True)

    def copy(kind: int) -> Callable[[], float]:
        dst, src = (target.data.ptr, host.ctypes.data) if kind == 1 else (host.ctypes.data, target.data.ptr)

        def timed() -> float:
            start = time.perf_counter()
            cp.cuda.runtime.memcpyAsync(dst, src, size, kind, stream.ptr)
            stream.synchronize()
            return time.perf_counter() - start

        return timed

    return {"h2d": copy(1), "d2h": copy(2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="JSON file to write")
    parser.add_argument("--only", choices=("all", "kernels", "channel"), default="all")
    parser.add_argument("--size-mib", type=int, default=1024, help="device bytes per kernel figure")
    parser.add_argument("--chunks", default="64K,1M,16M,64M", help="kernel chunk sizes")
    parser.add_argument("--channel-mib", type=int, default=256, help="bytes per channel transfer")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--slots", default="4", help="staging slot counts to sweep ('auto': channel default)")
    parser.add_argument("--threads", default="1,2,4,8,16", help="CPU thread counts to sweep")
    parser.add_argument("--chunk-size", type=int, default=1 << 20, help="channel chunk size")
    parser.add_argument("--budget-s", type=float, default=None, help="start no channel config past this")
    parser.add_argument("--fake", action="store_true", help="SIMULATED device and tiny sizes (script check)")
    args = parser.parse_args(argv)
    if args.repeats < 5:
        parser.error("use --repeats >= 5: medians of fewer samples are noise")
    try:
        chunk_sizes = [parse_size(c) for c in args.chunks.split(",")]
        slots = parse_slots(args.slots)
        threads = [int(t) for t in args.threads.split(",")]
        for cs in chunk_sizes:
            fmt.check_chunk_size(cs)
    except ValueError as e:
        parser.error(str(e))
    result: dict[str, Any] = {"machine": machine_info(), "args": vars(args) | {"out": str(args.out)}}

    def progress(section: str) -> Callable[[dict[str, Any]], None]:
        def save(part: dict[str, Any]) -> None:
            result[section] = part
            result["headline"] = headline(result)
            write_json(args.out, result)

        return save

    if args.fake:
        from cchet.gpu.fake_device import FakeDevice

        device: Any = FakeDevice()
        result["device"] = {"name": device.name, "simulated": True}
        if args.only in ("all", "kernels"):
            bench_kernels(Rig(device), 2 * 4096 + 100, chunk_sizes, args.repeats, progress("kernels"))
        if args.only in ("all", "channel"):
            size = 64 << 10
            bench_channel(
                device,
                size,
                fake_copies(device, size),
                repeats=args.repeats,
                slots=slots,
                threads=threads,
                chunk_size=4096,
                budget_s=args.budget_s,
                progress=progress("channel"),
            )
    else:
        try:
            import cupy as cp

            from cchet.gpu.cuda_device import CudaDevice

            dev = CudaDevice(0)
        except Exception as e:
            print(
                f"stage skipped: bench_gpu needs CuPy and an NVIDIA GPU ({type(e).__name__}: {e}); "
                "pip install 'cchet[gpu]', or try --fake",
            )
            return EXIT_CANNOT_RUN
        from cchet.platform.info import probe

        found = probe()
        result["device"] = {
            "name": dev.name,
            "simulated": False,
            "statements": found.statements(),
            "driver": found.driver,
        }
        write_json(args.out, result)
        if args.only in ("all", "kernels"):
            bench_kernels(Rig(dev, cp), args.size_mib << 20, chunk_sizes, args.repeats, progress("kernels"))
        if args.only in ("all", "channel"):
            size = args.channel_mib << 20
            bench_channel(
                0,
                size,
                pinned_copies(cp, size),
                repeats=args.repeats,
                slots=slots,
                threads=threads,
                chunk_size=args.chunk_size,
                budget_s=args.budget_s,
                progress=progress("channel"),
            )
    result["headline"] = headline(result)
    write_json(args.out, result)
    for name, r in result.get("kernels", {}).items():
        print_figure("kernels", name, r)
    for name, r in result.get("channel", {}).get("configs", {}).items():
        print_figure("channel", name, r)
    if result.get("channel", {}).get("skipped"):
        print(f"channel configs left out (budget {args.budget_s} s): {', '.join(result['channel']['skipped'])}")
    print(result["headline"])
    print(f"wrote {args.out}")
    return 0


def print_figure(section: str, name: str, r: dict[str, Any]) -> None:
    ratios = ", ".join(f"{k} {num(v, '.2f')}x vs {r['baseline'][k]}" for k, v in r["ratio_to_baseline"].items())
    rates = ", ".join(f"{k} {num(v, '.1f')}" for k, v in r["gb_per_s"].items())
    print(f"{section}/{name}: GB/s {rates}; {ratios}")


if __name__ == "__main__":
    sys.exit(main())
