"""Attested nodes are single-tenant: a multi-node Ray cluster that is not in hardened mode (no Ray TLS, no token
admission by attestation) gets no confidential calls -- so no keys -- and the error says how to start hardened
mode; ``allow_unhardened=True`` lets the owner say every node is theirs alone, which is printed, logged, written
to the audit log, and carried in every call ticket to the broker's release records."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cchet

pytestmark = [pytest.mark.slow, pytest.mark.ray]


@cchet.remote
def where() -> str:
    import ray

    return str(ray.get_runtime_context().get_node_id())


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        pytest.fail("tests/cluster needs this process free of Ray (it must run before tests/runtime)")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(tmp_path_factory.mktemp("home")))
        mp.delenv("CCHET_SIM_KEY_DIR", raising=False)
        temp_dir = tempfile.mkdtemp(prefix="cu", dir="/tmp")
        Path("/tmp/ray").mkdir(exist_ok=True)  # Cluster writes its address file there
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "temp_dir": temp_dir})
        cluster.add_node(num_cpus=1)
        try:
            yield cluster
        finally:
            cluster.shutdown()


def test_a_multi_node_cluster_outside_hardened_mode_gets_no_calls(two_nodes: Any, tmp_path: Path) -> None:
    cchet.init(address=two_nodes.address, simulate="tdx", audit_log=tmp_path / "audit.jsonl")
    try:
        with pytest.raises(cchet.CchetError, match=r"not in hardened mode.*cchet start.*allow_unhardened=True"):
            where.remote()
    finally:
        cchet.shutdown()
    events = [json.loads(line)["event"] for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert "release" not in events


def test_allow_unhardened_is_explicit_logged_and_audited(
    two_nodes: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audit = tmp_path / "audit.jsonl"
    session = cchet.init(address=two_nodes.address, simulate="tdx", audit_log=audit, allow_unhardened=True)
    try:
        assert "allow_unhardened=True" in capsys.readouterr().err
        assert cchet.get(where.remote()) in set(session.registry.qualifying("any", None))
    finally:
        cchet.shutdown()
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert any(r["event"] == "unhardened" and r["verdict"] == "allowed" for r in records)
    releases = [r for r in records if r["event"] == "release"]
    assert releases and all("unhardened multi-node cluster" in r["requester"] for r in releases)


def test_environment_variables_do_not_make_a_cluster_hardened(
    two_nodes: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack: the driver's environment says Ray TLS and token auth (as a hardened driver's does, and as
    anyone can set) while the nodes never received the cluster credentials. Hardened status used to be read
    from those variables; now each node must prove, in its attested answer, that it holds the cluster key
    material the broker releases to attested nodes."""
    import ray

    from cchet.broker.cluster import issue

    owner = issue([]).write(tmp_path / "creds")  # a real cluster certificate the nodes never got
    ray.init(address=two_nodes.address)
    try:
        with monkeypatch.context() as mp:  # Ray itself connected without them; only cchet sees them
            for name in ("RAY_USE_TLS", "RAY_TLS_SERVER_CERT", "RAY_AUTH_MODE"):
                mp.setenv(name, owner[name])
            session = cchet.init(simulate="tdx", audit_log=tmp_path / "audit.jsonl")
        try:
            assert not session.hardened and len(session.registry.qualifying("any", None)) == 2
            assert [row["hardened"] for row in session.status()] == [False, False]
            with pytest.raises(cchet.CchetError, match="not in hardened mode"):
                where.remote()
        finally:
            cchet.shutdown()
    finally:
        ray.shutdown()
    events = [json.loads(line)["event"] for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert "release" not in events
