"""Session lifecycle and policy: what ``cchet.init`` promises about simulation, policies and the audit trail.

Each test starts its own cchet session on the shared Ray; tests run after the module-scoped sessions of other
files have ended (pytest runs files in order, and fixtures tear down per module).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import cchet
from cchet import IntegrityError, Policy
from cchet.runtime.sealedref import SealedRef
from tests.broker_service import broker_serve


@cchet.remote(gpu="cc", num_gpus=1)
def on_gpu(x: int) -> int:
    return x + 1


@cchet.remote
def plain(x: int) -> int:
    return x


def test_calls_need_a_session(ray_cluster: Path) -> None:
    with pytest.raises(cchet.CchetError, match=r"cchet\.init\(\)"):
        plain.remote(1)


def test_simulated_session_says_so_and_pins_the_simulator(
    session_factory: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    session = session_factory(simulate="tdx")
    assert "SIMULATED tdx" in capsys.readouterr().err
    assert session.policy.allow_simulation and session.policy.mrtd, "the default pins the simulator's MRTD"
    assert cchet.get(plain.remote(5)) == 5
    with pytest.raises(cchet.CchetError, match="already called"):
        cchet.init(simulate="tdx")


def test_simulated_gpu_session_runs_gpu_tasks(session_factory: Any) -> None:
    session = session_factory(simulate="tdx+gpu")
    entry = session.registry.entries()[0]
    assert entry.gpus == 1 and entry.result.simulated
    assert cchet.get(on_gpu.remote(1)) == 2


def test_strict_policy_refuses_the_simulated_node_and_the_audit_log_says_why(
    session_factory: Any, tmp_path: Path
) -> None:
    strict = Policy(name="strict", mrtd=("ab" * 48,))
    session = session_factory(simulate="tdx", policy=strict)
    with pytest.raises(cchet.PlacementError, match="rejected") as info:
        plain.remote(1)
    assert "allow_simulation" in str(info.value) and "mrtd" in str(info.value)
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    node = [r for r in records if "node agent" in r["requester"]]
    assert node and node[-1]["verdict"] == "fail" and node[-1]["policy_id"] == strict.policy_id
    assert any("allow_simulation" in r for r in node[-1]["reasons"])
    assert session.policy is strict


@cchet.remote
def record(marker: str, a: Any) -> Any:
    Path(marker).write_text("ran")
    return a


def test_a_result_replayed_from_another_session(session_factory: Any, tmp_path: Path) -> None:
    """The object behind a new session's ref is replaced by an old session's result: refused, nothing runs."""
    import ray

    marker = tmp_path / "marker"
    session_factory(simulate="tdx")
    old = record.remote(str(marker), "old session")
    old_bytes = ray.get(old.ref)
    cchet.shutdown()
    session_factory(simulate="tdx")
    new = record.remote(str(marker), "new session")
    assert cchet.get(new) == "new session"
    replay = SealedRef(ray.put(old_bytes), new.descriptor)
    with pytest.raises(IntegrityError):
        cchet.get(replay)
    marker.unlink()
    with pytest.raises(IntegrityError):
        cchet.get(record.remote(str(marker), replay))
    assert not marker.exists(), "the task body ran on a replayed argument"


def test_a_standalone_broker_needs_its_pinned_id(ray_cluster: Path) -> None:
    with pytest.raises(cchet.CchetError, match="broker id the workers must pin"):
        cchet.init(simulate="tdx", broker="http://127.0.0.1:1")


def test_no_tee_and_no_simulation_raises_placement_error_with_the_fix(session_factory: Any) -> None:
    session = session_factory(simulate=None)
    assert session.registry.qualifying("any", None) == []
    assert any("no TEE attestation interface" in r for r in session.registry.failures.values())
    with pytest.raises(cchet.PlacementError, match=r"cchet\.init\(simulate='tdx'\)"):
        plain.remote(1)


def test_a_standalone_broker(session_factory: Any, tmp_path: Path) -> None:
    """cchet broker serve on the owner's side; the driver names it, pins its id and uses a job key made there."""
    import subprocess
    import sys

    from cchet.attest.simulate.authority import default_key_dir

    exe = Path(sys.executable).with_name("cchet")
    state, policy = tmp_path / "state", tmp_path / "sim.toml"
    policy.write_text('name = "sim"\nallow_simulation = true\n')
    subprocess.run(
        [
            exe,
            "broker",
            "key",
            "add",
            "--state",
            state,
            "--kind",
            "job",
            "--policy",
            policy,
            "--out",
            tmp_path / "job.key",
        ],
        check=True,
        capture_output=True,
    )
    served = broker_serve(
        "--state", state, "--policy", policy, "--audit-log", tmp_path / "broker-audit.jsonl",
        "--simulation-keys", default_key_dir(),
    )  # fmt: skip
    with served as broker:
        url, broker_id = broker.url, broker.broker_id
        with pytest.raises(cchet.CchetError, match="job key"):
            cchet.init(simulate="tdx", broker=url, broker_id=broker_id)
        session = session_factory(
            simulate="tdx", broker=url, broker_id=broker_id, job_key=tmp_path / "job.key", audit_log=None
        )
        assert session.local_broker is None and session.broker_url == url
        assert cchet.get(plain.remote(41)) == 41
        with pytest.raises(cchet.CchetError, match="standalone broker"):
            record.options(policy=Policy(name="x", allow_simulation=True)).remote(str(tmp_path / "m"), 1)
        events = [json.loads(line)["event"] for line in (tmp_path / "broker-audit.jsonl").read_text().splitlines()]
        assert "release" in events
