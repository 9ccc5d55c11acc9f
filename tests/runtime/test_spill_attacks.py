"""Attacks through spill files: a sealed result or a sealed argument, spilled to disk, is replaced by an object of
the same size whose metadata claims a pickled Python object (or one of Ray's error objects) and whose bytes are
a pickle that runs code. The trusted side must read it as data, refuse it for its metadata, and run nothing: no
marker file appears, ``cchet.get`` raises ``IntegrityError``, and no key is released for the attacked call."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cchet
from cchet import IntegrityError
from tests.runtime.spill_rewrite import marker_payload, python_object, raw_object, rewrite_spilled, task_error

pytestmark = pytest.mark.slow

BLOB = 4 << 20  # large enough to live in the object store, not inline in the owner's memory
FILL = 10 << 20


def _spill_everything() -> list[Any]:
    """Fill the 80 MiB store twice over, so older objects are spilled and evicted."""
    import ray

    return [ray.put(np.full(FILL, i, dtype=np.uint8)) for i in range(16)]


@pytest.fixture
def attack(ray_cluster: Path, tdx_session: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    audit = Path(tdx_session.local_broker.audit.path)
    yield {"temp_dir": ray_cluster, "marker": tmp_path / "marker", "audit": audit}


def _releases(audit: Path) -> int:
    return sum(json.loads(line)["event"] == "release" for line in audit.read_text().splitlines())


FORGERIES = {"python": python_object, "ray-error": task_error}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_a_rewritten_spilled_result_runs_nothing_in_the_driver(attack: dict[str, Any], forgery: str) -> None:
    import ray

    @cchet.remote
    def produce(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.uint8)

    ref = produce.remote(BLOB)
    ray.wait([ref.ref], timeout=120)
    original = raw_object(ref.ref)
    fill = _spill_everything()
    rewrite_spilled(attack["temp_dir"], original, FORGERIES[forgery], marker_payload(attack["marker"]))
    with pytest.raises(IntegrityError):
        cchet.get(ref)
    assert not attack["marker"].exists(), "the driver ran the attacker's pickle"
    del fill



@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_a_rewritten_spilled_argument_runs_nothing_in_the_worker(attack: dict[str, Any], forgery: str) -> None:
    @cchet.remote
    def consume(marker: str, x: np.ndarray) -> int:
        Path(marker + ".body").write_text("the task body ran")
        return int(x.sum())

    arg = cchet.put(np.ones(BLOB, dtype=np.uint8))
    original = raw_object(arg.ref)
    fill = _spill_everything()
    rewrite_spilled(attack["temp_dir"], original, FORGERIES[forgery], marker_payload(attack["marker"]))
    released = _releases(attack["audit"])
    with pytest.raises(IntegrityError):
        cchet.get(consume.remote(str(attack["marker"]), arg))
    assert not attack["marker"].exists(), "the attested worker ran the attacker's pickle"
    assert not Path(str(attack["marker"]) + ".body").exists(), "the task body ran on a forged argument"
    assert _releases(attack["audit"]) == released, "a key was released for the attacked call"
    del fill
