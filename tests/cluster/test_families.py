"""The TEE families in a cluster: an Azure vTPM SEV-SNP node, a Hygon CSV node and an Arm CCA node (SIMULATED,
each attesting with its own evidence format and simulated roots), plus a node that claims CSV in its labels and
environment but signs with another simulator's keys. Placement by kind, sealed values across the three, and no
key for the impostor. Runs before ``tests/runtime``, like ``test_cluster.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cchet
from cchet import PlacementError
from cchet.attest.simulate.authority import SimulatedAuthority

pytestmark = [pytest.mark.slow, pytest.mark.ray]

KINDS = ("az-snp", "csv", "cca")


@cchet.remote
def where(tag: int = 0) -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


@pytest.fixture(scope="module")
def families(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import ray

    if ray.is_initialized():
        pytest.fail("tests/cluster needs this process free of Ray (it must run before tests/runtime)")
    home = tmp_path_factory.mktemp("home")
    impostor_keys = tmp_path_factory.mktemp("impostor-keys")
    SimulatedAuthority.open(impostor_keys)
    audit = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.delenv("CCHET_SIM_KEY_DIR", raising=False)
        session = cchet.init(
            simulate=list(KINDS),
            num_cpus=1,
            object_store_memory=80 * 1024 * 1024,
            _temp_dir=tempfile.mkdtemp(prefix="cf", dir="/tmp"),
            audit_log=audit,
        )
        try:
            impostor = session.cluster.add_node(
                num_cpus=1,
                object_store_memory=80 * 1024 * 1024,
                labels={"tee": "csv"},
                env_vars={"CCHET_SIMULATE": "csv", "CCHET_SIM_KEY_DIR": str(impostor_keys)},
            )
            session.registry.refresh(session.worker_env(b"node-agent"))
            entries = session.registry.entries()
            yield {
                "session": session,
                "by_kind": {k: {e.node_id for e in entries if e.qualifies and e.tee_kind == k} for k in KINDS},
                "impostor": impostor.node_id,
                "audit": audit,
                "home": home,
            }
        finally:
            cchet.shutdown()


def test_each_family_node_attests_with_its_own_kind(families: dict[str, Any]) -> None:
    registry = families["session"].registry
    assert all(len(families["by_kind"][k]) == 1 for k in KINDS), families["by_kind"]
    impostor = next(e for e in registry.entries() if e.node_id == families["impostor"])
    assert not impostor.qualifies and impostor.result.verification_failures, "another simulator's keys"
    assert families["impostor"] not in registry.qualifying("csv", None)


def test_tasks_are_placed_by_tee_kind(families: dict[str, Any]) -> None:
    for kind in KINDS:
        assert set(cchet.get([where.options(tee=kind).remote(i) for i in range(4)])) == families["by_kind"][kind]
    everywhere = set().union(*families["by_kind"].values())
    assert set(cchet.get([where.options(spread=True).remote(i) for i in range(18)])) <= everywhere
    with pytest.raises(PlacementError, match="tee='az-tdx'"):
        where.options(tee="az-tdx").remote()


@cchet.remote(tee="az-snp")
def scale(x: np.ndarray) -> np.ndarray:
    return x * 2.0


@cchet.remote(tee="csv")
def shift(x: np.ndarray) -> np.ndarray:
    return x + 1.0


@cchet.remote(tee="cca")
def total(x: np.ndarray) -> tuple[str, float]:
    import ray

    return ray.get_runtime_context().get_node_id(), float(x.sum())


def test_sealed_values_flow_across_the_three_families(families: dict[str, Any]) -> None:
    """Azure SNP -> Hygon CSV -> Arm CCA: each node opens its argument with keys released for its own evidence."""
    x = np.arange(200_000, dtype=np.float64)
    node, s = cchet.get(total.remote(shift.remote(scale.remote(x))))
    assert node in families["by_kind"]["cca"] and s == float((x * 2.0 + 1.0).sum())
    released = [line for line in families["audit"].read_text().splitlines() if '"release"' in line]
    for kind in KINDS:
        (node_id,) = families["by_kind"][kind]
        assert any(node_id in line for line in released), f"no release to the {kind} node"
    assert not any(families["impostor"] in line for line in released)


def test_cchet_status_shows_each_kind(families: dict[str, Any]) -> None:
    rows = {r["node"]: r for r in families["session"].status()}
    for kind in KINDS:
        (node_id,) = families["by_kind"][kind]
        assert rows[node_id]["tee"] == kind and rows[node_id]["verdict"] == "accepted"
    assert rows[families["impostor"]]["verdict"] != "accepted"
    env = dict(os.environ, HOME=str(families["home"]))
    out = subprocess.run(
        [Path(sys.executable).with_name("cchet"), "status"], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert all(f" {kind} " in out for kind in KINDS), out
