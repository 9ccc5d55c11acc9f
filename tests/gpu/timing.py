"""Per-key timing test of the AES-GCM kernels, with a deliberately bank-conflicting build as positive control.

    python tests/gpu/timing.py OUT.json [--budget-s 60] [--samples-out SAMPLES.npz]
    python tests/gpu/timing.py OUT.json --fake clean     # SIMULATED timings: checks this script, not a GPU

Runs on the GPU machine (CuPy and a GPU); ``--fake clean|leak|insensitive`` replaces the measurement by a
SIMULATED timing model so the rest (candidates, prediction, classes, statistics, verdict, JSON) runs anywhere.

**Why these classes.** The kernels run AES in CTR mode: every table lookup is indexed by a byte of the AES
state of a *counter block* (nonce prefix, chunk index, block counter) under the stream key; the plaintext
never indexes a table (it is only XORed in, and GHASH uses no table). So "all-zero vs random plaintext"
cannot show a table-timing difference even in a leaky build; that experiment is kept (it watches the data
path) but the positive control needs classes that change the conflicts a naive table would suffer. For
each of ``--candidates`` random (AES key, nonce prefix) pairs, numpy computes every T-table index the kernel
reads for one chunk (224 lookups per block; thread ``t`` of the single thread block takes blocks ``t, t +
256, ...``, so warp-wide lookups cover 32 consecutive blocks) and counts the shared-memory wavefronts each
warp-wide lookup needs (the most distinct words asked of one bank) under the layouts of :data:`LAYOUTS`:
the production one (word ``32x + lane``: always one), the conflict build's (``CCHET_TABLE_LAYOUT_CONFLICT=1``:
lane ``l`` reads its replica at word ``256l + x``, bank ``x mod 32``, so lanes whose indices agree mod 32
serialise) and, in case that layout changes, a flat table (bank ``x mod 32``, equal indices broadcast). The
candidates with the most and the fewest predicted wavefronts under each of :data:`CONFLICT_MODELS` form the
classes ``high`` and ``low`` of experiment ``keys_<model>``. Two more experiments: ``keys_fixed_vs_random``
(one key against the others, TVLA's fixed-vs-random) and ``plaintext_zero_vs_random``.

**Measurement.** One launch seals one 16 KiB chunk in one thread block (the whole seal: segments and
finish kernels). A spin kernel holds the stream while the host queues a batch of launches with CUDA events
between them, so each event interval is one launch on the GPU with no host gap (a batch whose queuing
outlasted the spin is dropped). Experiment, class and member are drawn at random for every launch, and the
production and conflict builds alternate per batch, so drift hits every class alike.

**Statistics.** Welch's t-test per build and experiment; the two-sided p-value comes from Student's t with
the Welch-Satterthwaite degrees of freedom, computed through the regularized incomplete beta function
(continued fraction, modified Lentz), which is exact to about 1e-12 for any df; only above 1e7 degrees of
freedom does it switch to the normal tail (erfc), where the two agree to better than 1e-6. Samples above the
99.5th percentile of the two classes pooled (class-blind, so unbiased) are dropped as interruptions. A
difference is ``|t| > 4.5`` (the TVLA threshold, p < 1e-5 at large df).

**Verdict.** ``pass``: production shows no difference in any experiment, and the conflict build shows one
(``high`` slower) in at least one ``keys_<model>`` experiment. ``leak``: production shows a difference.
``inconclusive``: neither does, so this apparatus cannot see even the control and a clean production
result proves little. ``no_control``: the conflict build is not available (the reason is recorded).

Exit status: 0 pass or no_control, 1 leak or inconclusive, 3 cannot run here (no CuPy or GPU: the line
``stage skipped: <reason>`` says why), 2 usage.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

T_THRESHOLD = 4.5
CONFLICT_DEFINE = "CCHET_TABLE_LAYOUT_CONFLICT"
ROUNDS = 14
LOOKUPS_PER_BLOCK = 16 * ROUNDS
WARP = 32
TRIM_QUANTILE = 0.995
MIN_CLASS_SAMPLES = 100  # fewer per class in any production experiment: no verdict
EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_CANNOT_RUN = 0, 1, 2, 3

# A spin of bounded length on the stream (globaltimer is in ns): the host queues work while it runs. The
# iteration cap keeps it finite even if the timer were stuck.
SPIN_KERNEL = r"""
extern "C" __global__ void cchet_timing_spin(unsigned long long ns) {
  unsigned long long start, now;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
  unsigned long long i = 0;
  do {
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    ++i;
  } while (now - start < ns && i < ns);
}
"""

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U32 = npt.NDArray[np.uint32]

# --------------------------------------------------------------------------------------------- statistics


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            return h
    raise ArithmeticError(f"incomplete beta did not converge for a={a}, b={b}, x={x}")


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), for a, b > 0 and 0 <= x <= 1."""
    if not (a > 0 and b > 0 and 0.0 <= x <= 1.0):
        raise ValueError(f"betainc needs a, b > 0 and 0 <= x <= 1, got {a}, {b}, {x}")
    if x in (0.0, 1.0):
        return x
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom (normal tail above 1e7 df)."""
    if df <= 0 or math.isnan(t):
        raise ValueError(f"need df > 0 and a number t, got t={t}, df={df}")
    if math.isinf(t):
        return 0.0
    if df > 1e7:
        return math.erfc(abs(t) / math.sqrt(2.0))
    return betainc(df / 2.0, 0.5, df / (df + t * t))


@dataclass(frozen=True)
class Welch:
    """Welch's unequal-variance t-test of ``a`` against ``b`` (``t > 0``: ``a`` has the larger mean)."""

    t: float
    df: float
    p: float
    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    sd_a: float
    sd_b: float

    @property
    def significant(self) -> bool:
        return abs(self.t) > T_THRESHOLD

    def to_dict(self) -> dict[str, Any]:
        return {
            "t": _finite(self.t),
            "df": _finite(self.df),
            "p": self.p,
            "n_a": self.n_a,
            "n_b": self.n_b,
            "mean_a": self.mean_a,
            "mean_b": self.mean_b,
            "sd_a": self.sd_a,
            "sd_b": self.sd_b,
            "diff": self.mean_a - self.mean_b,
            "significant": self.significant,
        }


def _finite(x: float) -> float | str:
    return x if math.isfinite(x) else repr(x)


def welch(a: Sequence[float] | F64, b: Sequence[float] | F64) -> Welch:
    """Welch's t statistic, Welch-Satterthwaite df and the two-sided p-value. Needs two samples per class."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"Welch's test needs at least 2 samples per class, got {len(x)} and {len(y)}")
    mx, my = float(x.mean()), float(y.mean())
    vx, vy = float(x.var(ddof=1)), float(y.var(ddof=1))
    ex, ey = vx / len(x), vy / len(y)
    se2 = ex + ey
    if se2 == 0.0:
        t = 0.0 if mx == my else math.copysign(math.inf, mx - my)
        df = float(len(x) + len(y) - 2)
    else:
        t = (mx - my) / math.sqrt(se2)
        df = se2 * se2 / (ex * ex / (len(x) - 1) + ey * ey / (len(y) - 1))
    return Welch(t, df, t_two_sided_p(t, df), len(x), len(y), mx, my, math.sqrt(vx), math.sqrt(vy))


def trim_pooled(a: F64, b: F64, quantile: float = TRIM_QUANTILE) -> tuple[F64, F64, int]:
    """Drop samples above the ``quantile`` of both classes pooled (class-blind); returns the rest and the
    number dropped."""
    pooled = np.concatenate([a, b])
    if len(pooled) == 0:
        return a, b, 0
    cut = float(np.quantile(pooled, quantile))
    ka, kb = a[a <= cut], b[b <= cut]
    return ka, kb, len(a) + len(b) - len(ka) - len(kb)


# ------------------------------------------------------------------------------- the conflict predictor

# Shared-memory word read by ``lane`` for table index ``x`` under each layout; the bank is ``word & 31``.
LAYOUTS: dict[str, Callable[[I64, I64], I64]] = {
    # production, kernels/aes_gcm.cuh: replica r holds x at word 32x + r, lane r reads replica r
    "replicated": lambda x, lane: (x << 5) | lane,
    # CCHET_TABLE_LAYOUT_CONFLICT=1, kernels/aes_gcm.cuh: replica r holds x at word 256r + x (bank x mod 32)
    "lane_major": lambda x, lane: (lane << 8) | x,
    # a flat table (or replicas picked by the index): bank x mod 32, equal indices broadcast
    "index_replica": lambda x, lane: (x << 5) | (x & 31),
    # every lane reads one replica: all in one bank
    "single_replica": lambda x, lane: (x << 5) + 0 * lane,
}
# Layouts whose high/low-conflict keys form the classes of a key experiment (the first is the build's).
CONFLICT_MODELS = ("lane_major", "index_replica")


def _rotr(x: U32, n: int) -> U32:
    return ((x >> np.uint32(n)) | (x << np.uint32(32 - n))).astype(np.uint32)


def lookup_indices(round_keys: U32, blocks: U32) -> npt.NDArray[np.uint8]:
    """``(N, 14, 16)``: the table index of each of the 224 lookups the kernel makes per block, i.e. the
    bytes of the AES state entering each round (``blocks`` are big-endian words, ``(N, 4)``)."""
    from cchet.gpu import aes256

    t0 = aes256.t0_table()
    ff = np.uint32(0xFF)
    s = [blocks[:, c] ^ round_keys[c] for c in range(4)]
    out = np.empty((len(blocks), ROUNDS, 16), dtype=np.uint8)
    for r in range(ROUNDS):
        out[:, r, :] = np.stack(s, axis=1).astype(">u4").view(np.uint8).reshape(-1, 16)
        if r == ROUNDS - 1:
            break
        s = [
            t0[s[c] >> np.uint32(24)]
            ^ _rotr(t0[(s[(c + 1) % 4] >> np.uint32(16)) & ff], 8)
            ^ _rotr(t0[(s[(c + 2) % 4] >> np.uint32(8)) & ff], 16)
            ^ _rotr(t0[s[(c + 3) % 4] & ff], 24)
            ^ round_keys[4 * (r + 1) + c]
            for c in range(4)
        ]
    return out


def warp_rows(indices: npt.NDArray[np.uint8]) -> I64:
    """One row per warp-wide lookup: ``(warps * 224, 32)`` indices, warp ``w`` holding blocks ``32w ..
    32w + 31`` (one lane each)."""
    n = len(indices)
    if n % WARP:
        raise ValueError(f"need whole warps of blocks, got {n}")
    w = n // WARP
    return indices.reshape(w, WARP, LOOKUPS_PER_BLOCK).transpose(0, 2, 1).reshape(-1, WARP).astype(np.int64)


def wavefronts(words: I64) -> I64:
    """Shared-memory wavefronts of each warp-wide read of ``words`` ``(rows, 32)``: the most distinct
    words any one bank (``word & 31``) is asked for (equal words are one broadcast)."""
    rows = len(words)
    w = np.sort(words, axis=1)
    fresh = np.ones(w.shape, dtype=bool)
    fresh[:, 1:] = w[:, 1:] != w[:, :-1]
    slot = (np.arange(rows, dtype=np.int64)[:, None] * 32 + (w & 31))[fresh]
    counts = np.bincount(slot, minlength=rows * 32).reshape(rows, 32)
    return counts.max(axis=1)


def predict(round_keys: U32, blocks: U32) -> dict[str, int]:
    """Total wavefronts of the AES table reads for ``blocks`` under each layout of :data:`LAYOUTS`."""
    rows = warp_rows(lookup_indices(round_keys, blocks))
    lanes = np.arange(WARP, dtype=np.int64)[None, :]
    return {name: int(wavefronts(layout(rows, lanes)).sum()) for name, layout in LAYOUTS.items()}


@dataclass(frozen=True, eq=False)
class Candidate:
    """One random (key, nonce prefix) and the wavefronts its chunk would need under each layout."""

    schedule: Any
    predicted: dict[str, int]


def counter_blocks(prefix: bytes, blocks: int) -> U32:
    """The counter blocks of chunk 0 (not the last) of a stream with nonce prefix ``prefix``."""
    from cchet.gpu import reference

    nonce = reference.chunk_nonces(prefix, 0, 1, -1)[0]
    out = np.empty((blocks, 4), dtype=np.uint32)
    out[:, :3] = nonce
    out[:, 3] = np.arange(blocks, dtype=np.uint32) + np.uint32(2)
    return out


def make_candidates(count: int, chunk_size: int, rng: np.random.Generator) -> list[Candidate]:
    """``count`` random key schedules for one ``chunk_size`` chunk in one thread block, with predictions."""
    from cchet.gpu.geometry import plan
    from cchet.gpu.schedule import StreamSchedule

    geometry = plan(1, chunk_size, target_blocks=1)
    m = chunk_size // 16
    if geometry.segments != 1 or geometry.segment_blocks != m or m % WARP:
        raise ValueError(f"chunk size {chunk_size} does not give one whole segment of whole warps: {geometry}")
    out = []
    for _ in range(count):
        prefix = rng.bytes(7)
        schedule = StreamSchedule.build(rng.bytes(32), prefix, rng.bytes(32), geometry)
        out.append(Candidate(schedule, predict(schedule.round_keys, counter_blocks(prefix, m))))
    return out


# ------------------------------------------------------------------------------------------- experiments


@dataclass(frozen=True)
class Experiment:
    """Two classes of launches: ``members`` are candidate indices, ``plaintext`` 'random' or 'zero'."""

    name: str
    labels: tuple[str, str]
    members: tuple[tuple[int, ...], tuple[int, ...]]
    plaintext: tuple[str, str]
    expect_control: bool = False  # the conflict build should show a difference here (a slower)


def experiments(candidates: Sequence[Candidate], class_size: int, pool: int) -> list[Experiment]:
    """The key-class experiments under each conflict model, fixed-vs-random key and zero-vs-random data."""
    if len(candidates) < max(2 * class_size, pool) or class_size < 1 or pool < 3:
        raise ValueError(f"need >= 2 * class_size and >= pool (>= 3) candidates, got {len(candidates)}")
    out = []
    for model in CONFLICT_MODELS:
        order = np.argsort([c.predicted[model] for c in candidates], kind="stable")
        high = tuple(int(i) for i in order[-class_size:])
        low = tuple(int(i) for i in order[:class_size])
        out.append(Experiment(f"keys_{model}", ("high", "low"), (high, low), ("random", "random"), True))
    members = tuple(range(pool))
    out.append(Experiment("keys_fixed_vs_random", ("fixed", "random"), ((0,), members[1:]), ("random", "random")))
    out.append(Experiment("plaintext_zero_vs_random", ("zero", "random"), (members, members), ("zero", "random")))
    return out


@dataclass
class Samples:
    """Every kept launch of one build: experiment index, class (0 = a, 1 = b), candidate, seconds."""

    experiment: list[int] = field(default_factory=list)
    klass: list[int] = field(default_factory=list)
    candidate: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    dropped_batches: int = 0

    def add(self, draws: Sequence[tuple[int, int, int]], seconds: F64) -> None:
        for (e, k, c), s in zip(draws, seconds, strict=True):
            self.experiment.append(e)
            self.klass.append(k)
            self.candidate.append(c)
            self.seconds.append(float(s))

    def arrays(self) -> tuple[I64, I64, I64, F64]:
        return (
            np.asarray(self.experiment, dtype=np.int64),
            np.asarray(self.klass, dtype=np.int64),
            np.asarray(self.candidate, dtype=np.int64),
            np.asarray(self.seconds, dtype=np.float64),
        )


def draw(exps: Sequence[Experiment], n: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """``n`` launches: (experiment, class, candidate), each drawn uniformly."""
    es = rng.integers(len(exps), size=n)
    ks = rng.integers(2, size=n)
    us = rng.random(n)
    out = []
    for e, k, u in zip(es.tolist(), ks.tolist(), us.tolist(), strict=True):
        members = exps[e].members[k]
        out.append((e, k, members[int(u * len(members))]))
    return out


def analyse(exps: Sequence[Experiment], samples: Samples, candidates: Sequence[Candidate]) -> dict[str, Any]:
    """Welch's test per experiment on the trimmed samples, plus the predicted wavefronts of each class."""
    e_idx, k_idx, _, secs = samples.arrays()
    out: dict[str, Any] = {}
    for i, exp in enumerate(exps):
        a, b = secs[(e_idx == i) & (k_idx == 0)], secs[(e_idx == i) & (k_idx == 1)]
        a, b, dropped = trim_pooled(a, b)
        entry: dict[str, Any] = {"labels": list(exp.labels), "trimmed": dropped}
        if exp.name.startswith("keys_") and exp.name[5:] in LAYOUTS:
            model = exp.name[5:]
            entry["predicted_wavefronts"] = [
                float(np.mean([candidates[c].predicted[model] for c in members])) for members in exp.members
            ]
        if len(a) >= 2 and len(b) >= 2:
            entry |= welch(a, b).to_dict()
        else:
            entry["error"] = f"too few samples ({len(a)}, {len(b)})"
        out[exp.name] = entry
    return out


def _t(entry: dict[str, Any]) -> str:
    t = float(entry["t"])
    return f"{t:.1f}" if math.isfinite(t) else str(t)


def verdict(builds: dict[str, Any], exps: Sequence[Experiment]) -> tuple[str, str]:
    """(status, sentence) from the per-build analyses; see the module docstring."""
    prod = builds["production"]["experiments"]
    thin = [n for n, e in prod.items() if min(e.get("n_a", 0), e.get("n_b", 0)) < MIN_CLASS_SAMPLES]
    if thin:
        return "inconclusive", (
            f"too few samples (< {MIN_CLASS_SAMPLES} per class) in the production build's " + ", ".join(thin)
        )
    leaks = [f"{n} (t={_t(e)})" for n, e in prod.items() if e.get("significant")]
    if leaks:
        return "leak", "production build: timing differs between classes in " + ", ".join(leaks)
    control = builds.get("conflict", {})
    if "experiments" not in control:
        return "no_control", (
            "production build: no difference in any experiment (|t| <= 4.5); positive control not run: "
            + str(control.get("skipped", "conflict build unavailable"))
        )
    seen = [
        f"{e.name} (t={_t(control['experiments'][e.name])})"
        for e in exps
        if e.expect_control
        and control["experiments"][e.name].get("significant")
        and float(control["experiments"][e.name]["t"]) > 0
    ]
    if seen:
        return "pass", (
            "production build: no difference in any experiment (|t| <= 4.5); the conflict build shows the "
            "expected one in " + ", ".join(seen)
        )
    return "inconclusive", (
        "production build: no difference, but the bank-conflicting build shows none either (high-conflict keys "
        "not slower with |t| > 4.5): this measurement cannot see the control, so it proves little"
    )


# ------------------------------------------------------------------------------------------ measurement


def conflict_device(cp: Any, index: int) -> tuple[Any | None, str]:
    """A device whose kernels are the ``CCHET_TABLE_LAYOUT_CONFLICT=1`` build, and how it was made; or
    (None, why not).

    Preferred: ``CudaDevice(index, defines={...})`` (the loader compiles and caches that variant). Older
    trees without that option: a ``CudaDevice`` whose launches are pointed at a module compiled with the
    define (``loader.module(index, defines=...)`` if the loader has it, else CuPy over ``loader.source()``).
    """
    from cchet.gpu import loader
    from cchet.gpu.cuda_device import CudaDevice

    if CONFLICT_DEFINE not in loader.source():
        return None, (
            f"the kernels have no {CONFLICT_DEFINE} switch (not in kernels/aes_gcm.cu*): no bank-conflicting "
            "build to use as positive control"
        )
    defines = {CONFLICT_DEFINE: 1}
    if "defines" in inspect.signature(CudaDevice).parameters:
        dev = CudaDevice(index, defines=defines)
        loader.module(index, defines=defines)  # compile now, not inside a timed batch
        return dev, f"CudaDevice({index}, defines={defines!r})"
    if "defines" in inspect.signature(loader.module).parameters:
        mod = loader.module(index, defines=defines)
        how = f"loader.module({index}, defines={defines!r}), swapped into each CudaGCM"
    else:
        with cp.cuda.Device(index):
            mod = cp.RawModule(
                code=loader.source(), options=(*loader.NVRTC_OPTIONS, f"-D{CONFLICT_DEFINE}=1"), backend="nvrtc"
            )
            for name in loader.KERNEL_NAMES:
                mod.get_function(name)
        how = f"CuPy RawModule(loader.source(), -D{CONFLICT_DEFINE}=1), swapped into each CudaGCM"
    return _SwappedDevice(CudaDevice(index), loader.module(index), mod), how


class _SwappedDevice:
    """A CudaDevice whose ``gcm`` objects launch ``module`` instead of the production one."""

    def __init__(self, dev: Any, default: Any, module: Any) -> None:
        self._dev, self._default, self._module = dev, default, module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dev, name)

    def gcm(self, schedule: Any, chunk_size: int) -> Any:
        g = self._dev.gcm(schedule, chunk_size)
        if not bind_module(g, self._default, self._module):
            raise RuntimeError(
                "no attribute of CudaGCM holds loader.module(0), so the conflict build cannot be swapped in: "
                "update tests/gpu/timing.py for the loader's defines option"
            )
        return g


def bind_module(gcm: Any, default: Any, other: Any) -> list[str]:
    """Point every attribute of ``gcm`` that holds the ``default`` module at ``other``; returns their names."""
    names = [n for n, v in _attributes(gcm) if v is default]
    for n in names:
        setattr(gcm, n, other)
    return names


def _attributes(obj: Any) -> list[tuple[str, Any]]:
    if hasattr(obj, "__dict__"):
        return list(vars(obj).items())
    slots = [s for cls in type(obj).__mro__ for s in getattr(cls, "__slots__", ())]
    return [(s, getattr(obj, s)) for s in slots if hasattr(obj, s)]


class CudaBench:
    """Times seal launches of one chunk on the GPU, production and (when available) conflicting build."""

    simulated = False

    def __init__(self, cp: Any, candidates: Sequence[Candidate], chunk_size: int, rng: np.random.Generator) -> None:
        from cchet.gpu.cuda_device import CudaDevice
        from cchet.gpu.device import Batch

        self.cp = cp
        dev = CudaDevice(0)
        self.name = dev.name
        self.candidates = candidates
        self.cs = chunk_size
        self.batch = Batch(0, 1, chunk_size, False)
        self.stream = dev.stream()
        raw = getattr(self.stream, "stream", None)
        if raw is None:
            raise RuntimeError("CudaDevice.stream() no longer exposes its CuPy stream as .stream: update timing.py")
        self.raw = raw
        self.src = {
            "random": cp.asarray(np.frombuffer(rng.bytes(chunk_size), dtype=np.uint8)),
            "zero": cp.zeros(chunk_size, dtype=cp.uint8),
        }
        self.dst = cp.empty(chunk_size + 16, dtype=cp.uint8)
        self.spin = cp.RawKernel(SPIN_KERNEL, "cchet_timing_spin")
        self.spin_ns = 2_000_000
        self.devices: dict[str, Any] = {"production": dev}
        self.gcms: dict[str, dict[int, Any]] = {"production": {}}
        self.unavailable: dict[str, str] = {}
        self.conflict_how = ""
        try:
            conflict, how = conflict_device(cp, 0)
            if conflict is not None:
                self.devices["conflict"] = conflict
                self.gcms["conflict"] = {}
                self.gcm("conflict", 0)
        except Exception as e:  # a broken conflict build must not cost the production measurement
            conflict, how = None, f"the conflict build is unusable: {type(e).__name__}: {e}"
            self.devices.pop("conflict", None)
            self.gcms.pop("conflict", None)
        if conflict is None:
            self.unavailable["conflict"] = how
        else:
            self.conflict_how = how
        self.gcm("production", 0)
        self.launch_options = (
            {"join_caller": False}
            if "join_caller" in inspect.signature(self.gcms["production"][0].seal).parameters
            else {}
        )

    @property
    def builds(self) -> list[str]:
        return list(self.gcms)

    def gcm(self, build: str, i: int) -> Any:
        cache = self.gcms[build]
        g = cache.get(i)
        if g is None:
            g = cache[i] = self.devices[build].gcm(self.candidates[i].schedule, self.cs)
        return g

    def seal_once(self, build: str, i: int, plaintext: str) -> bytes:
        self.gcm(build, i).seal(self.src[plaintext], self.dst, self.batch, self.stream)
        self.stream.synchronize()
        return bytes(self.dst.get().tobytes())

    def measure(self, build: str, launches: Sequence[tuple[int, str]]) -> tuple[F64, bool]:
        """Seconds of each launch (candidate, plaintext), and whether the batch ran with no host gap."""
        cp = self.cp
        work = [(self.gcm(build, i), self.src[p]) for i, p in launches]
        with self.raw:
            self.spin((1,), (1,), (np.uint64(self.spin_ns),))
        t0 = time.perf_counter()
        events = [self.raw.record()]
        held = []  # launches keep their buffers alive until the batch is done
        for g, src in work:
            held.append(g.seal(src, self.dst, self.batch, self.stream, **self.launch_options))
            events.append(self.raw.record())
        host_ns = (time.perf_counter() - t0) * 1e9
        events[-1].synchronize()
        ms = [float(cp.cuda.get_elapsed_time(a, b)) for a, b in itertools.pairwise(events)]
        clean = host_ns < 0.8 * self.spin_ns
        self.spin_ns = int(min(max(2.0 * host_ns, 1e6), 1e8))
        del held
        return np.asarray(ms, dtype=np.float64) / 1e3, clean


class SimulatedBench:
    """SIMULATED timings for dry runs: base + noise, plus for the conflict build (and, in mode ``leak``,
    for production too) 1 ns per wavefront predicted under ``lane_major``; ``insensitive`` gives the
    conflict build a constant slowdown only. Says nothing about a GPU."""

    simulated = True
    name = "SIMULATED timing model (no GPU)"

    def __init__(self, candidates: Sequence[Candidate], mode: str, rng: np.random.Generator) -> None:
        self.candidates = candidates
        self.mode = mode
        self.rng = rng
        self.builds = ["production", "conflict"]
        self.unavailable: dict[str, str] = {}
        self.conflict_how = "SIMULATED"

    def seal_once(self, build: str, i: int, plaintext: str) -> bytes:
        return b"SIMULATED"

    def measure(self, build: str, launches: Sequence[tuple[int, str]]) -> tuple[F64, bool]:
        pred = np.array([self.candidates[i].predicted["lane_major"] for i, _ in launches], dtype=np.float64)
        t = 20e-6 + self.rng.normal(0.0, 0.4e-6, len(launches))
        sloped = (build == "conflict" and self.mode != "insensitive") or (build == "production" and self.mode == "leak")
        if build == "conflict":
            t += 5e-6
        if sloped:
            t += 1e-9 * pred
        return t, True


# ------------------------------------------------------------------------------------------------- main


def write_json(path: Path, obj: dict[str, Any]) -> None:
    """Write ``obj`` to ``path`` atomically (a temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def gpu_missing() -> str | None:
    """Why the GPU measurement cannot run here, or None."""
    try:
        import cupy as cp
    except Exception as e:
        return f"CuPy is not importable here ({type(e).__name__}: {e}); use --fake for a dry run"
    try:
        if int(cp.cuda.runtime.getDeviceCount()) < 1:
            return "no CUDA GPU visible"
    except Exception as e:
        return f"no usable CUDA GPU: {e}"
    return None


def run(args: argparse.Namespace, candidates: list[Candidate] | None = None) -> tuple[int, dict[str, Any]]:
    """The whole test; ``candidates`` (for tests) replaces the random ones."""
    started = time.monotonic()
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(8), "little")
    rng = np.random.default_rng(seed)
    result: dict[str, Any] = {
        "what": "per-key timing of the seal kernels (tests/gpu/timing.py)",
        "method": {
            "classes": "keys with the most vs fewest predicted bank-conflict wavefronts under each naive layout "
            "model; one key vs others; all-zero vs random plaintext",
            "test": "Welch's t-test, two-sided p from Student's t (regularized incomplete beta; normal above 1e7 df)",
            "threshold_abs_t": T_THRESHOLD,
            "trim": f"class-blind: drop samples above the {TRIM_QUANTILE} quantile of both classes pooled",
            "launch": f"seal of one {args.chunk_size}-byte chunk in one thread block; CUDA events behind a spin kernel",
        },
        "seed": seed,
        "simulated": args.fake is not None,
    }
    if args.fake is None:
        missing = gpu_missing()
        if missing is not None:
            result["skipped"] = missing
            return EXIT_CANNOT_RUN, result
    if candidates is None:
        candidates = make_candidates(args.candidates, args.chunk_size, rng)
    exps = experiments(candidates, args.class_size, args.pool)
    preds = {m: [c.predicted[m] for c in candidates] for m in LAYOUTS}
    result["candidates"] = {
        "count": len(candidates),
        "class_size": args.class_size,
        "pool": args.pool,
        "predicted_wavefronts": {
            m: {"min": min(v), "median": float(np.median(v)), "max": max(v), "sd": float(np.std(v))}
            for m, v in preds.items()
        },
        "replicated_layout_is_conflict_free": len(set(preds["replicated"])) == 1
        and preds["replicated"][0] == (args.chunk_size // 16) // WARP * LOOKUPS_PER_BLOCK,
    }
    result["status"] = "setting up"  # rewritten as the run goes: a run cut short still leaves its state
    write_json(args.out, result)
    if args.fake is not None:
        bench: Any = SimulatedBench(candidates, args.fake, rng)
    else:
        bench = CudaBench(importlib.import_module("cupy"), candidates, args.chunk_size, rng)
    result["device"] = bench.name
    result["conflict_build"] = bench.conflict_how or bench.unavailable.get("conflict")
    result["status"] = "measuring"
    write_json(args.out, result)

    # Both builds must compute the same ciphertext (the conflict build changes where the table lives only).
    builds = list(bench.builds)
    if "conflict" in builds:
        same = bench.seal_once("production", 0, "random") == bench.seal_once("conflict", 0, "random")
        result["conflict_build_same_ciphertext"] = same
        if not same:
            builds.remove("conflict")
            bench.unavailable["conflict"] = "the conflict build's ciphertext differs from production's: not used"

    samples = {b: Samples() for b in builds}
    deadline = started + args.budget_s
    per_build = 0
    while per_build < args.max_samples and time.monotonic() < deadline:
        for b in builds:
            d = draw(exps, args.batch, rng)
            secs, clean = bench.measure(b, [(c, exps[e].plaintext[k]) for e, k, c in d])
            if clean:
                samples[b].add(d, secs)
            else:
                samples[b].dropped_batches += 1
        per_build += args.batch
    out_builds: dict[str, Any] = {}
    for b in builds:
        s = samples[b]
        secs = np.asarray(s.seconds)
        out_builds[b] = {
            "samples": len(secs),
            "dropped_batches": s.dropped_batches,
            "median_launch_s": float(np.median(secs)) if len(secs) else None,
            "experiments": analyse(exps, s, candidates),
        }
    for b, why in bench.unavailable.items():
        out_builds[b] = {"skipped": why}
    result["builds"] = out_builds
    prod_med = out_builds["production"].get("median_launch_s")
    conf_med = out_builds.get("conflict", {}).get("median_launch_s")
    if prod_med and conf_med:
        result["conflict_slowdown"] = conf_med / prod_med
    status, sentence = verdict(out_builds, exps)
    result["status"] = status
    result["verdict"] = sentence
    result["headline"] = f"timing {status}: {sentence}"
    if "conflict_slowdown" in result:
        result["headline"] += f" (a conflict-build launch takes {result['conflict_slowdown']:.2f}x production's)"
    result["seconds"] = time.monotonic() - started
    if args.samples_out is not None:
        arrays = {
            f"{b}_{k}": v
            for b in builds
            for k, v in zip(("experiment", "klass", "candidate", "seconds"), samples[b].arrays(), strict=True)
        }
        args.samples_out.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.samples_out, **arrays)
    return (EXIT_PASS if status in ("pass", "no_control") else EXIT_FAIL), result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="JSON file to write")
    parser.add_argument("--budget-s", type=float, default=60.0, help="stop measuring after this many seconds")
    parser.add_argument("--candidates", type=int, default=256, help="random keys to predict conflicts for")
    parser.add_argument("--class-size", type=int, default=24, help="keys in each of the high and low classes")
    parser.add_argument("--pool", type=int, default=16, help="keys of the fixed-vs-random and plaintext tests")
    parser.add_argument("--chunk-size", type=int, default=16 << 10)
    parser.add_argument("--batch", type=int, default=64, help="launches queued behind one spin")
    parser.add_argument("--max-samples", type=int, default=60_000, help="launches per build at most")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--samples-out", type=Path, default=None, help="every kept sample, as .npz")
    parser.add_argument(
        "--fake",
        choices=("clean", "leak", "insensitive"),
        default=None,
        help="SIMULATED timings (dry run of everything but the GPU)",
    )
    args = parser.parse_args(argv)
    if args.budget_s <= 0 or args.batch < 1:
        parser.error("--budget-s and --batch must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        code, result = run(args)
    except Exception as e:
        write_json(args.out, {"error": f"{type(e).__name__}: {e}"})
        raise
    write_json(args.out, result)
    if code == EXIT_CANNOT_RUN:
        print(f"stage skipped: {result['skipped']}")
    else:
        print(result["headline"])
        for b, r in result["builds"].items():
            for name, e in r.get("experiments", {}).items():
                if "t" in e:
                    print(f"  {b:10s} {name:26s} t={_t(e):>8s} p={e['p']:.2e} n={e['n_a']}/{e['n_b']}")
    return code


if __name__ == "__main__":
    sys.exit(main())
