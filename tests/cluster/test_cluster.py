"""A confidential multi-node cluster on ``ray.cluster_utils.Cluster``: attested placement, a plain node and a
malicious one, the leak scan with spilling, and (last) a node dying mid-task.

Nodes: an SNP head and two TDX nodes (SIMULATED), plus a plain node with no TEE, a malicious node that
declares TDX in its labels and environment but holds another simulator's keys, and a node with no TEE whose
node agent answers with a crafted pickle. Only the first three may ever receive a key or a task. This module
runs before ``tests/runtime`` (which shares one Ray of its own).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cchet
from cchet import KeyReleaseDenied, PlacementError
from cchet.attest.simulate.authority import SimulatedAuthority
from tests.leak_scan import scan

pytestmark = [pytest.mark.slow, pytest.mark.ray]

OBJECT_STORE = 80 * 1024 * 1024


@cchet.remote
def where(tag: int = 0) -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


@cchet.remote(tee="tdx", max_retries=3)
def slow_where(marker_dir: str, seconds: float) -> tuple[str, bytes]:
    import ray

    node = ray.get_runtime_context().get_node_id()
    Path(marker_dir, f"started-{node}-{os.getpid()}").write_text(node)
    time.sleep(seconds)
    return node, b"intact" * 1000


CRAFTED_AGENT = """
def _craft():
    import cchet.runtime.registry as registry

    class Payload:
        def __reduce__(self):
            return (exec, ("open(%r, 'w').write('the driver ran the node agent reply')",))

    registry._collect = lambda *args, **kwargs: Payload()


_craft()
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import ray

    if ray.is_initialized():
        pytest.fail("tests/cluster needs this process free of Ray (it must run before tests/runtime)")
    home = tmp_path_factory.mktemp("home")
    temp_dir = Path(tempfile.mkdtemp(prefix="cc", dir="/tmp"))
    evil_keys = tmp_path_factory.mktemp("evil-keys")
    SimulatedAuthority.open(evil_keys)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.delenv("CCHET_SIM_KEY_DIR", raising=False)
        audit = tmp_path_factory.mktemp("audit") / "audit.jsonl"
        session = cchet.init(
            simulate=["snp", "tdx", "tdx+gpu"],
            num_cpus=1,
            object_store_memory=OBJECT_STORE,
            _temp_dir=str(temp_dir),
            audit_log=audit,
        )
        try:
            nodes = {n.node_id: n for n in session.cluster.list_all_nodes()}
            plain = session.cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
            evil = session.cluster.add_node(
                num_cpus=1,
                object_store_memory=OBJECT_STORE,
                labels={"tee": "tdx"},
                env_vars={"CCHET_SIMULATE": "tdx", "CCHET_SIM_KEY_DIR": str(evil_keys)},
            )
            crafted_dir = tmp_path_factory.mktemp("crafted")
            marker = crafted_dir / "marker"
            (crafted_dir / "sitecustomize.py").write_text(CRAFTED_AGENT % str(marker))
            crafted = session.cluster.add_node(
                num_cpus=1, object_store_memory=OBJECT_STORE, env_vars={"PYTHONPATH": str(crafted_dir)}
            )
            session.registry.refresh(session.worker_env(b"node-agent"))
            entries = {e.node_id: e for e in session.registry.entries()}
            yield {
                "session": session,
                "nodes": nodes,
                "tdx": {n for n, e in entries.items() if e.qualifies and e.tee_kind == "tdx"},
                "snp": {n for n, e in entries.items() if e.qualifies and e.tee_kind == "snp"},
                "gpu": {n for n, e in entries.items() if e.qualifies and e.gpus and e.cc},
                "plain": plain.node_id,
                "evil": evil.node_id,
                "crafted": crafted.node_id,
                "crafted_marker": marker,
                "temp_dir": temp_dir,
                "audit": audit,
                "home": home,
            }
        finally:
            cchet.shutdown()


def test_registry_admits_only_attested_nodes(cluster: dict[str, Any]) -> None:
    registry = cluster["session"].registry
    assert len(cluster["tdx"]) == 2 and len(cluster["snp"]) == 1
    qualifying = set(registry.qualifying("any", None))
    assert qualifying == cluster["tdx"] | cluster["snp"]
    assert not {cluster["plain"], cluster["evil"], cluster["crafted"]} & qualifying
    assert "no TEE attestation interface" in registry.failures[cluster["plain"]]
    evil = next(e for e in registry.entries() if e.node_id == cluster["evil"])
    assert not evil.qualifies and evil.result.verification_failures, "another simulator's keys do not verify"


def test_a_crafted_node_agent_reply_runs_nothing_in_the_driver(cluster: dict[str, Any]) -> None:
    """A node without a TEE answers the node agent with a pickle that runs code when unpickled: the driver reads
    the reply as data, refuses it for its metadata, and rejects the node."""
    registry = cluster["session"].registry
    assert not cluster["crafted_marker"].exists(), "the driver unpickled a node agent's reply"
    assert cluster["crafted"] not in registry.qualifying("any", None)
    assert "not raw evidence bytes" in registry.failures[cluster["crafted"]], registry.failures[cluster["crafted"]]


def test_tasks_run_only_on_qualifying_nodes(cluster: dict[str, Any]) -> None:
    tdx_ids = cchet.get([where.options(tee="tdx", spread=True).remote(i) for i in range(24)])
    assert set(tdx_ids) <= cluster["tdx"] and len(set(tdx_ids)) == 2, "spread over both TDX nodes"
    snp_ids = cchet.get([where.options(tee="snp").remote(i) for i in range(6)])
    assert set(snp_ids) == cluster["snp"]
    any_ids = cchet.get([where.options(spread=True).remote(i) for i in range(24)])
    assert set(any_ids) <= cluster["tdx"] | cluster["snp"]


@cchet.remote(tee="snp")
def normalise(raw: np.ndarray) -> np.ndarray:
    return (raw / raw.max()).astype(np.float32)


@cchet.remote(gpu="cc")
def gpu_step(x: Any, w: Any) -> tuple[str, str, Any]:
    import ray

    return ray.get_runtime_context().get_node_id(), type(x).__name__, x @ w


def test_a_pipeline_across_a_cpu_tee_node_and_a_gpu_node(cluster: dict[str, Any]) -> None:
    """SNP node -> the GPU node (arguments opened on its SIMULATED GPU) -> the driver: sealed all the way."""
    assert len(cluster["gpu"]) == 1 and cluster["gpu"] <= cluster["tdx"]
    raw = np.arange(1, 1 + 128 * 64, dtype=np.float64).reshape(128, 64)
    node, kind, y = cchet.get(gpu_step.remote(normalise.remote(raw), cchet.put(np.eye(64, dtype=np.float32))))
    assert node in cluster["gpu"] and kind == "SimulatedDeviceArray"
    assert type(y) is np.ndarray and np.allclose(y, (raw / raw.max()).astype(np.float32))


def test_no_qualifying_node_fails_within_two_seconds(cluster: dict[str, Any]) -> None:
    start = time.perf_counter()
    with pytest.raises(PlacementError, match="tee='sgx'"):
        where.options(tee="sgx").remote()
    assert time.perf_counter() - start < 2


def test_the_malicious_node_gets_no_key(cluster: dict[str, Any]) -> None:
    """Even asking the broker directly from the malicious node (as a compromised host would), with a valid call
    ticket it stole, gets nothing: its evidence does not verify."""
    import ray

    session = cluster["session"]
    function = bytes(32)
    ticket = session.ticket(function, (session.job_key.key_id,), "any", None)

    @ray.remote(num_cpus=0)
    def steal(job_key_id: bytes, ticket: bytes) -> str:
        from cchet.runtime.environment import worker_client

        try:
            worker_client().keys([job_key_id], function=function.hex(), ticket=ticket)
        except KeyReleaseDenied as e:
            return "denied: " + "; ".join(e.reasons)
        return "released"

    env = session.worker_env(b"thief")
    answer = ray.get(
        steal.options(
            label_selector={"ray.io/node-id": f"in({cluster['evil']})"}, runtime_env={"env_vars": env}
        ).remote(session.job_key.key_id, ticket)
    )
    assert answer.startswith("denied") and "ticket" not in answer, answer
    releases = [line for line in cluster["audit"].read_text().splitlines() if '"release"' in line]
    assert releases and not any(cluster["evil"] in r or cluster["plain"] in r for r in releases)


def test_cchet_status(cluster: dict[str, Any]) -> None:
    cluster["session"].status()
    env = dict(os.environ, HOME=str(cluster["home"]))
    out = subprocess.run(
        [Path(sys.executable).with_name("cchet"), "status"], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert out.count("accepted (SIMULATED)") == 3 and "unattested" in out and "rejected" in out
    assert "not in hardened cluster mode" in out


def test_leak_scan_on_the_cluster_with_spilling(cluster: dict[str, Any], report: list[str]) -> None:
    import ray

    canary, plain_canary = b"canary-" + os.urandom(8).hex().encode(), b"canary-" + os.urandom(8).hex().encode()

    @cchet.remote(spread=True)
    def confidential(x: bytes, blob: np.ndarray) -> bytes:
        print(x.decode())
        logging.getLogger("leaky").warning("%s", x.decode())
        return x + bytes(blob[:4])

    @ray.remote
    def plain(x: bytes, blob: np.ndarray) -> bytes:
        print(x.decode())
        return x + bytes(blob[:4])

    def blob(c: bytes) -> np.ndarray:
        return np.frombuffer(c * ((8 << 20) // len(c)), dtype=np.uint8).copy()

    assert all(r.startswith(canary) for r in cchet.get([confidential.remote(canary, blob(canary)) for _ in range(4)]))
    held = [cchet.put(blob(canary)) for _ in range(14)]
    assert ray.get(plain.remote(plain_canary, blob(plain_canary))).startswith(plain_canary)
    held_plain = [ray.put(blob(plain_canary)) for _ in range(14)]
    found, found_plain = scan(cluster["temp_dir"], canary), scan(cluster["temp_dir"], plain_canary)
    del held, held_plain
    report.append(
        f"cluster leak scan: plain Ray canary in {dict(found_plain)}; cchet canary in {dict(found) or 'nothing'}"
    )
    assert found_plain["spill"] > 0 and found_plain["logs"] > 0
    assert not found, found


def test_a_node_dying_mid_task_is_survived(cluster: dict[str, Any], tmp_path: Path) -> None:
    """Fault test, last: remove the node running the task; the result comes from the other TDX node, intact."""
    ref = slow_where.remote(str(tmp_path), 15.0)
    deadline = time.time() + 60
    while not list(tmp_path.glob("started-*")) and time.time() < deadline:
        time.sleep(0.2)
    first = next(tmp_path.glob("started-*")).read_text()
    assert first in cluster["tdx"]
    cluster["session"].cluster.remove_node(cluster["nodes"][first])
    node, payload = cchet.get(ref, timeout=120)
    assert node in cluster["tdx"] and node != first
    assert payload == b"intact" * 1000
