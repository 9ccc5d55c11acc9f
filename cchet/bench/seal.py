"""Seal and unseal throughput against one-shot ``AESGCM.encrypt_into`` on one core (DESIGN.md section 8).

Baseline: a single ``AESGCM.encrypt_into`` of the whole buffer into a warm, preallocated output, on the
calling thread: raw OpenSSL AES-GCM with no framing. Candidates: ``cchet.seal_into`` and
``cchet.unseal_into`` on 1..N threads (OpenSSL backend) and on one thread with pycryptodome, each into
a warm output. ``ratio`` is candidate throughput over baseline throughput for the same size.

Goals: framing overhead on one thread >= 0.95 at >= 1 MiB; all cores >= 0.9 x cores at 256 MiB. For N >= 2
threads a ``raw-chunks`` reference row times bare ``encrypt_into`` over 1 MiB chunks on N threads (no framing):
the ceiling this machine's cores and memory allow, against which the parallel rows can also be read.
"""

from __future__ import annotations

import os
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import cchet
from cchet.bench.timing import interleaved_medians, machine_info

__all__ = ["DEFAULT_SIZES", "run", "table"]

DEFAULT_SIZES = (4 << 10, 64 << 10, 1 << 20, 16 << 20, 256 << 20)


def _label(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def _raw_chunks(raw: AESGCM, nonce: bytes, src: bytearray, out: bytearray, threads: int) -> None:
    """The hardware's parallel ceiling: bare ``encrypt_into`` over 1 MiB chunks, one contiguous run per thread,
    no framing (no key derivation, headers, nonces per chunk or checks)."""
    import threading

    step, n = 1 << 20, len(src)
    count = max(1, -(-n // step))
    s, d = memoryview(src), memoryview(out)

    def run(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            chunk = s[i * step : min(n, (i + 1) * step)]
            raw.encrypt_into(nonce, chunk, None, d[i * (step + 16) : i * (step + 16) + len(chunk) + 16])

    bounds = [count * k // threads for k in range(threads + 1)]
    workers = [threading.Thread(target=run, args=(bounds[k], bounds[k + 1])) for k in range(1, threads)]
    for w in workers:
        w.start()
    run(bounds[0], bounds[1])
    for w in workers:
        w.join()


def _candidates(n: int, cores: int, key: cchet.DataKey, raw: AESGCM, nonce: bytes) -> dict[str, Any]:
    src = (bytearray(os.urandom(min(n, 1 << 20))) * max(1, n >> 20))[:n]
    base_out = bytearray(n + 16)
    sealed = bytearray(cchet.sealed_size(n))
    opened = bytearray(n)
    blob = cchet.seal(key, src)
    fns: dict[str, Any] = {"baseline": lambda: raw.encrypt_into(nonce, src, None, base_out)}
    for t in range(1, cores + 1):
        fns[f"seal/{t}"] = lambda t=t: cchet.seal_into(key, src, sealed, threads=t)
        fns[f"unseal/{t}"] = lambda t=t: cchet.unseal_into(key, blob, opened, threads=t)
    for t in range(2, cores + 1):
        fns[f"raw-chunks/{t}/reference"] = lambda t=t: _raw_chunks(raw, nonce, src, sealed, t)
    fns["seal/1/pycryptodome"] = lambda: cchet.seal_into(key, src, sealed, threads=1, backend="pycryptodome")
    fns["unseal/1/pycryptodome"] = lambda: cchet.unseal_into(key, blob, opened, threads=1, backend="pycryptodome")
    return fns


def run(
    sizes: tuple[int, ...] | None = None, threads: int | None = None, repeats: int = 7, quick: bool = False
) -> dict[str, Any]:
    """Measure every size (``quick``: 1 MiB and 16 MiB only); returns the result document."""
    sizes = sizes or ((1 << 20, 16 << 20) if quick else DEFAULT_SIZES)
    cores = threads or len(os.sched_getaffinity(0))
    key = cchet.DataKey.generate()
    raw = AESGCM(AESGCM.generate_key(256))
    nonce = os.urandom(12)
    rows = []
    for n in sizes:
        med = interleaved_medians(_candidates(n, cores, key, raw, nonce), repeats=repeats)
        base = med.pop("baseline")
        for name, seconds in med.items():
            op, t, *backend = name.split("/")
            rows.append(
                {
                    "size": n,
                    "size_label": _label(n),
                    "operation": op,
                    "threads": int(t),
                    "backend": backend[0] if backend else "openssl",
                    "seconds": seconds,
                    "gb_per_s": n / seconds / 1e9,
                    "baseline_seconds": base,
                    "baseline_gb_per_s": n / base / 1e9,
                    "ratio": base / seconds,
                }
            )
    return {
        "benchmark": "seal",
        "baseline": "one-shot cryptography AESGCM.encrypt_into of the same buffer into a warm, preallocated "
        "output, one core, same process",
        "method": f"median of {repeats} interleaved samples after a warm-up",
        "goals": {"framing_overhead_1_thread_ge_1MiB": 0.95, "all_cores_256MiB_ratio_per_core": 0.9},
        "machine": machine_info(),
        "rows": rows,
    }


def table(result: dict[str, Any]) -> str:
    """A Markdown table of a result document, one line per size, operation and configuration."""
    lines = [
        "| size | operation | threads | backend | GB/s | baseline GB/s | ratio |",
        "|---:|---|---:|---|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['size_label']} | {r['operation']} | {r['threads']} | {r['backend']} | "
            f"{r['gb_per_s']:.2f} | {r['baseline_gb_per_s']:.2f} | {r['ratio']:.2f} |"
        )
    return "\n".join(lines)
