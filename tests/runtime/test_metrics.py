"""Ray dashboard metrics: the counters exist as ``ray.util.metrics`` objects, are made lazily, and count what
cchet sealed, opened, attested and refused -- in the driver and, read back from a task, in a worker."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import cchet
from cchet import IntegrityError, KeyReleaseDenied
from cchet.runtime import metrics
from cchet.runtime.environment import ENV
from cchet.runtime.values import open_value, seal_value

KEY = cchet.DataKey.generate()


def _delta(before: dict[str, float], name: str) -> float:
    return metrics.totals().get(name, 0) - before.get(name, 0)


@pytest.fixture(autouse=True)
def _as_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV["scope"], raising=False)


def test_importing_creates_no_counter_and_no_ray() -> None:
    code = "import sys, cchet.runtime.metrics as m; assert not m._counters and 'ray' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_counters_are_ray_metrics_with_their_declared_tags(monkeypatch: pytest.MonkeyPatch) -> None:
    from ray.util.metrics import Counter

    calls: list[tuple[str, float, dict[str, str]]] = []
    metrics.flush()  # what earlier tests counted
    monkeypatch.setattr(
        Counter, "inc", lambda self, value=1.0, tags=None: calls.append((self.info["name"], value, tags))
    )
    metrics.bytes_sealed(5)
    metrics.refusal("placement")  # goes at once, with the pending byte count
    assert calls == [
        ("cchet_bytes_sealed", 5, {"where": "driver"}),
        ("cchet_refusals", 1, {"where": "driver", "kind": "placement"}),
    ]
    for name, (_description, tag_keys) in metrics.COUNTERS.items():
        made = metrics.counter(name)
        assert isinstance(made, Counter) and made is metrics.counter(name)
        assert made.info["name"] == name and made.info["tag_keys"] == tag_keys and made.info["description"]
    with pytest.raises(ValueError, match="refusal kind"):
        metrics.refusal("bogus")


def test_sealing_and_opening_count_the_same_plaintext_bytes() -> None:
    before = metrics.totals()
    value = np.arange(10_000, dtype=np.uint8)
    parts = seal_value(KEY, value, b"ctx")
    sealed = _delta(before, "cchet_bytes_sealed{where=driver}")
    assert sealed >= value.nbytes
    np.testing.assert_array_equal(open_value(KEY, parts, b"ctx"), value)
    assert _delta(before, "cchet_bytes_opened{where=driver}") == sealed


def test_a_value_that_fails_to_open_counts_an_integrity_refusal() -> None:
    before = metrics.totals()
    parts = seal_value(KEY, b"payload", b"ctx")
    with pytest.raises(IntegrityError):
        open_value(KEY, parts, b"another context")
    assert _delta(before, "cchet_refusals{kind=integrity,where=driver}") == 1
    assert _delta(before, "cchet_bytes_opened{where=driver}") == 0


def test_a_worker_counts_as_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV["scope"], "0123456789abcdef")
    before = metrics.totals()
    metrics.bytes_opened(7)
    assert _delta(before, "cchet_bytes_opened{where=worker}") == 7


class _Client:
    def __init__(self, outcome: Any, attests: bool) -> None:
        self.attestations = 0
        self.outcome, self.attests = outcome, attests

    def keys(self, key_ids: Any, **request: Any) -> Any:
        self.attestations += self.attests
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


def test_key_requests_count_attestations_and_refusals() -> None:
    before = metrics.totals()
    accepted, rejected = (
        "cchet_attestations{verdict=accepted,where=driver}",
        "cchet_attestations{verdict=rejected,where=driver}",
    )
    assert metrics.counted_release(_Client("keys", attests=True), [b"k"], function="f") == "keys"
    assert metrics.counted_release(_Client("cached", attests=False), [b"k"], function="f") == "cached"
    with pytest.raises(KeyReleaseDenied):
        metrics.counted_release(_Client(KeyReleaseDenied(["policy"]), attests=True), [b"k"], function="f")
    assert (_delta(before, accepted), _delta(before, rejected)) == (1, 1)
    assert _delta(before, "cchet_refusals{kind=key_release,where=driver}") == 1


@cchet.remote(tee="tdx")
def worker_totals(x: np.ndarray) -> dict[str, float]:
    from cchet.runtime import metrics as worker_metrics

    return worker_metrics.totals()


@cchet.remote(tee="snp")
def needs_snp(x: int) -> int:
    return x


@pytest.mark.ray
def test_a_session_counts_in_the_driver_and_in_its_workers(tdx_session: Any) -> None:
    before = metrics.totals()
    with pytest.raises(cchet.PlacementError):
        needs_snp.remote(1)
    assert _delta(before, "cchet_refusals{kind=placement,where=driver}") == 1
    assert metrics.totals()["cchet_attestations{verdict=accepted,where=driver}"] >= 1  # the node agent's appraisal
    inside = cchet.get(worker_totals.remote(np.ones(4096, dtype=np.uint8)))
    assert inside["cchet_attestations{verdict=accepted,where=worker}"] >= 1
    assert inside["cchet_bytes_opened{where=worker}"] >= 4096
    assert not any("where=driver" in name for name in inside)
    assert _delta(before, "cchet_bytes_sealed{where=driver}") >= 4096
    assert _delta(before, "cchet_bytes_opened{where=driver}") > 0
    assert os.environ.get(ENV["scope"]) is None
