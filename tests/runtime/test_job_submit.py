"""``ray job submit`` of examples/job_submit/job.py against a standalone broker, as its README shows.

A separate Ray head (``ray start --head --block``, token auth, its own short temp dir, free ports) runs in its
own process group and is stopped by killing that group -- never ``ray stop``, which would stop every Ray of
this user. This process never calls ``ray.init`` for it: the driver runs only through ``ray job submit``.
The broker, the job's workers and the policy share one simulator key directory (``CCHET_SIM_KEY_DIR``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.broker_service import broker_serve
from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.ray]

BIN = Path(sys.executable).parent
STARTED = "Ray runtime started"


def _argv(*parts: Any) -> list[str]:
    return [str(p) for p in parts]


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _stop_group(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after 2 s."""
    for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            if sig == signal.SIGKILL:
                return
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the leader exited on SIGTERM; its raylet and GCS may not have


def _cchet(env: dict[str, str], *args: Any) -> str:
    out = subprocess.run(_argv(BIN / "cchet", *args), env=env, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout + out.stderr


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment of every process here: a temporary home, Ray token auth, one simulator key dir."""
    home = tmp_path / "home"
    home.mkdir()
    token = tmp_path / "ray-token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "CCHET_"))}
    env.update(
        HOME=str(home),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN_PATH=str(token),
        RAY_USAGE_STATS_ENABLED="0",
        CCHET_SIM_KEY_DIR=str(tmp_path / "sim-keys"),
    )
    return env


@pytest.fixture
def owner(env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The data owner's side: a policy pinning the simulator's measurements, a job key, ``cchet broker serve``."""
    evidence, policy, state = tmp_path / "tdx.evidence", tmp_path / "policy.toml", tmp_path / "owner-state"
    _cchet(env, "attest", "--simulate", "tdx", "--key-dir", env["CCHET_SIM_KEY_DIR"], "--out", evidence)
    _cchet(env, "policy", "from-evidence", evidence, "--allow-simulation", "--name", "sim-tdx", "-o", policy)
    job_key = tmp_path / "job.key"
    _cchet(env, "broker", "key", "add", "--state", state, "--policy", policy, "--kind", "job", "--out", job_key)
    audit = tmp_path / "audit.jsonl"
    served = broker_serve(
        "--state", state, "--policy", policy, "--audit-log", audit, "--simulation-keys", env["CCHET_SIM_KEY_DIR"],
        env=env,
    )  # fmt: skip
    with served as broker:
        assert f"broker id: {broker.broker_id}" in _cchet(env, "broker", "id", "--state", state)  # as the README
        yield {
            "env": env,
            "url": broker.url,
            "broker_id": broker.broker_id,
            "job_key": str(job_key),
            "state": state,
            "audit": audit,
        }


@pytest.fixture
def ray_head(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Starts a Ray head (job-submission dashboard, token auth, short temp dir) at once; yields a function that
    waits for it and returns its dashboard URL, so the owner's setup runs while the head boots."""
    temp_dir = tempfile.mkdtemp(prefix="cj", dir="/tmp")  # Unix socket paths allow 107 bytes
    gcs, dashboard, agent, client = _free_ports(4)
    log = tmp_path / "head.log"
    with log.open("w") as out:
        head = subprocess.Popen(
            _argv(BIN / "ray", "start", "--head", "--block", "--temp-dir", temp_dir, "--num-cpus", 2)
            + _argv("--include-dashboard=true", "--dashboard-host", "127.0.0.1", "--object-store-memory", 100 << 20)
            + _argv("--port", gcs, "--dashboard-port", dashboard, "--dashboard-agent-listen-port", agent)
            + _argv("--ray-client-server-port", client),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as a whole below
        )

    def ready() -> str:
        deadline = time.monotonic() + 60
        while STARTED not in log.read_text():
            assert head.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        return f"http://127.0.0.1:{dashboard}"

    try:
        yield ready
    finally:
        _stop_group(head)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _submit(owner: dict[str, Any], head: str, cwd: Path, **env_vars: str) -> subprocess.Popen[str]:
    """Start ``ray job submit`` of job.py (it waits for the job and exits with its status)."""
    runtime_env = {
        "env_vars": {
            "CCHET_BROKER_URL": owner["url"],
            "CCHET_BROKER_ID": owner["broker_id"],
            "CCHET_JOB_KEY": owner["job_key"],
            **env_vars,
        }
    }
    return subprocess.Popen(
        _argv(BIN / "ray", "job", "submit", "--address", head, "--working-dir", REPO / "examples" / "job_submit")
        + _argv("--runtime-env-json", json.dumps(runtime_env), "--", "python", "job.py", "--simulate", "tdx"),
        env=owner["env"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(submit: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        logs, _ = submit.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        submit.kill()
        logs, _ = submit.communicate()
    return submit.returncode, logs


def test_ray_job_submit_runs_the_example_against_a_standalone_broker(
    ray_head: Callable[[], str], owner: dict[str, Any], tmp_path: Path
) -> None:
    head = ray_head()
    good = _submit(owner, head, tmp_path)
    # Workers pinned to another broker id accept nothing from this broker: that job fails and prints no result.
    squatted = _submit(owner, head, tmp_path, CCHET_BROKER_ID="00" * 32)
    code, logs = _finish(good)
    assert code == 0, logs[-4000:]
    assert "SIMULATED tdx TEE" in logs
    assert f"broker: {owner['url']} (standalone)" in logs
    assert "risk: scoring 10000 records inside the TEE" in logs
    result = re.search(r"result: (\{.*\})", logs)
    assert result, logs[-4000:]
    summary = json.loads(result.group(1))
    assert summary["records"] == 10_000 and 0 < summary["mean_risk"] < 1
    code, logs = _finish(squatted)
    assert code != 0 and "untrustworthy" in logs and "result: " not in logs, logs[-4000:]
    records = [json.loads(line) for line in owner["audit"].read_text().splitlines()]
    assert any(r["event"] == "release" and r["verdict"] == "released" for r in records), records
    assert "intact" in _cchet(owner["env"], "audit", "verify", owner["audit"], "--state", owner["state"])
