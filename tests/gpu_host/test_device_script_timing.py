"""tests/gpu/timing.py without a GPU: Welch's t-test and its p-values against closed forms, table values
and an independent integration; the conflict predictor against brute force and the AES reference; the
verdict logic; and whole runs on the SIMULATED timing model (clean, leaky and insensitive)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cchet.gpu import aes256
from tests.gpu import timing

# ------------------------------------------------------------------------------------------- statistics


@pytest.mark.parametrize("t", [0.0, 0.3, 1.0, 2.5, 10.0, 300.0])
def test_p_value_closed_forms_for_one_and_two_degrees_of_freedom(t: float) -> None:
    assert timing.t_two_sided_p(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), rel=1e-10, abs=1e-15)
    assert timing.t_two_sided_p(-t, 2) == pytest.approx(1 - t / math.sqrt(t * t + 2), rel=1e-10, abs=1e-15)


@pytest.mark.parametrize(
    ("t", "df", "p"),
    [
        (12.706204736174707, 1, 0.05),  # Student's t tables: two-sided 5 % and 1 % points
        (2.2281388519649385, 10, 0.05),
        (4.032142983557536, 5, 0.01),
        (2.0422724563012373, 30, 0.05),
        (1.959963984540054, 1e9, 0.05),  # the normal limit (erfc branch)
        (3.2905267314919255, 1e9, 0.001),
    ],
)
def test_p_value_matches_tables(t: float, df: float, p: float) -> None:
    assert timing.t_two_sided_p(t, df) == pytest.approx(p, rel=1e-8)


def test_p_value_is_continuous_across_the_normal_switch_and_tiny_in_the_tails() -> None:
    assert timing.t_two_sided_p(1.96, 9.9e6) == pytest.approx(timing.t_two_sided_p(1.96, 1.01e7), rel=1e-6)
    tiny = timing.t_two_sided_p(40.0, 1000)
    assert 0.0 <= tiny < 1e-200
    assert timing.t_two_sided_p(5.0, 5000) < timing.t_two_sided_p(4.5, 5000) < 1e-5


def _t_pdf(x: float, df: float) -> float:
    c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(c - (df + 1) / 2 * math.log1p(x * x / df))


def _p_by_integration(t: float, df: float, steps: int = 20_000) -> float:
    """1 - 2 * integral_0^|t| of the t density (Simpson): independent of the incomplete beta."""
    h = abs(t) / steps
    s = _t_pdf(0, df) + _t_pdf(abs(t), df)
    s += sum((4 if i % 2 else 2) * _t_pdf(i * h, df) for i in range(1, steps))
    return 1 - 2 * s * h / 3


def test_welch_by_hand() -> None:
    # a: mean 3, variance 2.5; b: mean 6, variance 10; n = 5 each.
    # t = (3 - 6) / sqrt(2.5/5 + 10/5) = -3 / sqrt(2.5); df = 2.5^2 / (0.5^2/4 + 2^2/4) = 100/17.
    w = timing.welch([1, 2, 3, 4, 5], [2, 4, 6, 8, 10])
    assert w.t == pytest.approx(-3 / math.sqrt(2.5), rel=1e-12)
    assert w.df == pytest.approx(100 / 17, rel=1e-12)
    assert w.p == pytest.approx(_p_by_integration(w.t, w.df), abs=1e-10)
    assert 0.1 < w.p < 0.12 and not w.significant
    assert (w.n_a, w.n_b, w.mean_a, w.mean_b) == (5, 5, 3.0, 6.0)
    assert w.sd_b == pytest.approx(math.sqrt(10))
    flipped = timing.welch([2, 4, 6, 8, 10], [1, 2, 3, 4, 5])
    assert flipped.t == pytest.approx(-w.t) and flipped.p == pytest.approx(w.p)


def test_welch_detects_a_shift_and_not_noise() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.normal(10.0, 1.0, 4000), rng.normal(10.0, 1.0, 3000)
    assert not timing.welch(a, b).significant
    shifted = timing.welch(a + 0.2, b)
    assert shifted.significant and shifted.t > 4.5 and shifted.p < 1e-5
    d = shifted.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["significant"] is True and d["diff"] == pytest.approx(shifted.mean_a - shifted.mean_b)


def test_welch_edge_cases() -> None:
    same = timing.welch([1.0, 1.0], [1.0, 1.0])
    assert same.t == 0.0 and same.p == 1.0
    apart = timing.welch([1.0, 1.0], [2.0, 2.0])
    assert apart.t == -math.inf and apart.p == 0.0 and apart.to_dict()["t"] == "-inf"
    with pytest.raises(ValueError, match="at least 2"):
        timing.welch([1.0], [1.0, 2.0])


def test_trimming_is_class_blind() -> None:
    a = np.array([1.0] * 500 + [100.0])
    b = np.array([1.0] * 500)
    ka, kb, dropped = timing.trim_pooled(a, b)
    assert dropped >= 1 and ka.max() == 1.0 and len(kb) + len(ka) + dropped == 1001


# --------------------------------------------------------------------------------------------- predictor


def test_lookup_indices_are_the_states_the_kernel_indexes() -> None:
    rng = np.random.default_rng(1)
    rk = aes256.expand_key(bytes(range(32)))
    blocks = rng.integers(0, 2**32, size=(64, 4), dtype=np.uint64).astype(np.uint32)
    idx = timing.lookup_indices(rk, blocks)
    assert idx.shape == (64, 14, 16)
    first = (blocks ^ rk[:4]).astype(">u4").view(np.uint8).reshape(-1, 16)
    assert np.array_equal(idx[:, 0], first)
    # Finishing the last round from the recorded state gives AES itself.
    sb = aes256.sbox().astype(np.uint32)
    st = idx[:, 13].astype(np.int64)

    def byte(c: int, b: int) -> Any:
        return sb[st[:, 4 * (c % 4) + b]]

    last = np.stack(
        [
            (byte(c, 0) << 24 | byte(c + 1, 1) << 16 | byte(c + 2, 2) << 8 | byte(c + 3, 3)) ^ rk[56 + c]
            for c in range(4)
        ],
        axis=1,
    )
    assert np.array_equal(last, aes256.encrypt_blocks(rk, blocks))


def _brute_wavefronts(words: np.ndarray) -> list[int]:
    out = []
    for row in words.tolist():
        banks: dict[int, set[int]] = {}
        for w in row:
            banks.setdefault(w & 31, set()).add(w)
        out.append(max(len(v) for v in banks.values()))
    return out


def test_wavefronts_match_brute_force() -> None:
    rng = np.random.default_rng(3)
    lanes = np.arange(32, dtype=np.int64)[None, :]
    x = rng.integers(0, 256, size=(200, 32), dtype=np.int64)
    x[:20] = 7  # one index for the whole warp
    x[20:40] = (lanes * 32) % 256  # eight indices, all in bank 0
    for layout in timing.LAYOUTS.values():
        words = layout(x, lanes)
        assert timing.wavefronts(words).tolist() == _brute_wavefronts(words)
    by = {name: timing.wavefronts(layout(x, lanes)) for name, layout in timing.LAYOUTS.items()}
    assert (by["replicated"] == 1).all()  # production: never a conflict
    assert by["lane_major"][:20].tolist() == [32] * 20  # per-lane replicas: equal indices still conflict
    assert by["index_replica"][:20].tolist() == [1] * 20  # a flat table broadcasts them
    assert by["lane_major"][20:40].tolist() == [32] * 20 and by["index_replica"][20:40].tolist() == [8] * 20


def test_counter_blocks_and_candidates() -> None:
    blocks = timing.counter_blocks(bytes(range(7)), 64)
    assert blocks[:, 3].tolist() == list(range(2, 66))
    assert blocks[0, 0] == 0x00010203 and blocks[0, 1] == 0x04050600 and blocks[0, 2] == 0
    cands = timing.make_candidates(3, 4096, np.random.default_rng(0))
    for c in cands:
        assert c.predicted["replicated"] == (4096 // 16 // 32) * 224
        assert c.predicted["lane_major"] > c.predicted["index_replica"] > c.predicted["replicated"]
    with pytest.raises(ValueError, match="one whole segment"):
        timing.make_candidates(1, 16, np.random.default_rng(0))


@pytest.fixture(scope="module")
def candidates() -> list[timing.Candidate]:
    return timing.make_candidates(40, 16 << 10, np.random.default_rng(11))


def test_experiments_pick_the_extreme_keys(candidates: list[timing.Candidate]) -> None:
    exps = timing.experiments(candidates, 8, 8)
    assert [e.name for e in exps] == [
        "keys_lane_major",
        "keys_index_replica",
        "keys_fixed_vs_random",
        "plaintext_zero_vs_random",
    ]
    lane = exps[0]
    high = [candidates[i].predicted["lane_major"] for i in lane.members[0]]
    low = [candidates[i].predicted["lane_major"] for i in lane.members[1]]
    assert min(high) >= max(low) and len(high) == len(low) == 8 and lane.expect_control
    assert exps[3].plaintext == ("zero", "random") and not exps[3].expect_control


# ------------------------------------------------------------------------------------------------ verdict


def _build(ts: dict[str, float], n: int = 500) -> dict[str, Any]:
    return {"experiments": {k: {"t": t, "significant": abs(t) > 4.5, "n_a": n, "n_b": n} for k, t in ts.items()}}


def test_verdicts() -> None:
    exps = timing.experiments(timing.make_candidates(6, 4096, np.random.default_rng(2)), 2, 3)
    quiet = dict.fromkeys((e.name for e in exps), 0.5)
    loud = quiet | {"keys_lane_major": 9.0}
    assert timing.verdict({"production": _build(quiet), "conflict": _build(loud)}, exps)[0] == "pass"
    assert timing.verdict({"production": _build(loud), "conflict": _build(loud)}, exps)[0] == "leak"
    assert timing.verdict({"production": _build(quiet), "conflict": _build(quiet)}, exps)[0] == "inconclusive"
    backwards = quiet | {"keys_lane_major": -9.0}  # low-conflict keys slower: not the control's signature
    assert timing.verdict({"production": _build(quiet), "conflict": _build(backwards)}, exps)[0] == "inconclusive"
    status, why = timing.verdict({"production": _build(quiet), "conflict": {"skipped": "no switch"}}, exps)
    assert status == "no_control" and "no switch" in why
    status, why = timing.verdict({"production": _build(quiet, n=10), "conflict": _build(loud)}, exps)
    assert status == "inconclusive" and "too few samples" in why


# ---------------------------------------------------------------------------- runs on the simulated model


@pytest.mark.parametrize(
    ("mode", "status", "code"), [("clean", "pass", 0), ("leak", "leak", 1), ("insensitive", "inconclusive", 1)]
)
def test_simulated_runs(candidates: list[timing.Candidate], tmp_path: Path, mode: str, status: str, code: int) -> None:
    argv = ["--fake", mode, "--class-size", "8", "--pool", "8", "--seed", "4", "--max-samples", "6000"]
    args = timing.parse_args([str(tmp_path / "t.json"), *argv])
    got, result = timing.run(args, candidates)
    assert (got, result["status"]) == (code, status), result["verdict"]
    assert result["simulated"] is True and result["candidates"]["replicated_layout_is_conflict_free"] is True
    assert json.loads((tmp_path / "t.json").read_text())["status"] == "measuring"  # the checkpoint; main writes the end
    assert result["builds"]["production"]["samples"] > 2000
    lane = result["builds"]["conflict"]["experiments"]["keys_lane_major"]
    assert lane["predicted_wavefronts"][0] > lane["predicted_wavefronts"][1]
    json.dumps(result, allow_nan=False)


def test_main_writes_json_and_samples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "timing.json"
    code = timing.main(
        [str(out), "--fake", "clean", "--candidates", "20", "--class-size", "6", "--pool", "6",
         "--max-samples", "4000", "--samples-out", str(tmp_path / "s.npz"), "--seed", "1"]
    )  # fmt: skip
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["status"] == "pass" and doc["headline"].startswith("timing pass")
    assert "timing pass" in capsys.readouterr().out
    with np.load(tmp_path / "s.npz") as z:
        assert set(z.files) >= {"production_seconds", "conflict_seconds", "production_klass"}


def test_without_a_gpu_it_says_why_and_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if timing.gpu_missing() is None:
        pytest.skip("a GPU is here: the real measurement would run")
    assert timing.main([str(tmp_path / "t.json")]) == 3
    assert capsys.readouterr().out.startswith("stage skipped: ")
    assert "skipped" in json.loads((tmp_path / "t.json").read_text())


def test_bind_module_swaps_every_reference() -> None:
    default, other = object(), object()

    class Plain:
        def __init__(self) -> None:
            self._mod = default
            self.name = "x"

    class Slotted:
        __slots__ = ("_mod", "keep")

        def __init__(self) -> None:
            self._mod = default
            self.keep = 1

    for cls in (Plain, Slotted):
        g = cls()
        assert timing.bind_module(g, default, other) == ["_mod"] and g._mod is other
        assert timing.bind_module(g, default, other) == []
