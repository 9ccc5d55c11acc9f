"""Hardened cluster mode on one machine: a head and two attested nodes join with TLS and token auth through
``cchet start``; a third node without the simulator's keys gets no credentials and cannot join, and a second job
without the cluster token cannot reach the nodes.

Everything runs in subprocesses in their own process groups (``ray start`` heads are never stopped with
``ray stop``), with a short temp dir and HOME in a temp folder.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cchet.attest.simulate.authority import SimulatedAuthority
from tests.broker_service import broker_serve

pytestmark = [pytest.mark.slow, pytest.mark.ray]

BIN = Path(sys.executable).parent


def _wait_started(proc: subprocess.Popen[str], log: Path, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while "Ray runtime started" not in log.read_text():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.time() < deadline, log.read_text()[-3000:]
        time.sleep(0.5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [str(a) for a in args],
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=15)
                    break
                except subprocess.TimeoutExpired:
                    continue


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, object]]:
    home = tmp_path / "home"
    home.mkdir()
    sim, evil = tmp_path / "sim-keys", tmp_path / "evil-keys"
    SimulatedAuthority.open(sim)
    SimulatedAuthority.open(evil)
    temp_dir = Path(tempfile.mkdtemp(prefix="ch", dir="/tmp"))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "CCHET_"))}
    base |= {"HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0"}
    procs = Processes()
    try:
        yield {"home": home, "sim": sim, "evil": evil, "temp_dir": temp_dir, "env": base, "procs": procs}
    finally:
        procs.stop()
        subprocess.run(["rm", "-rf", str(temp_dir)], check=False)


def test_only_attested_nodes_join(world: dict[str, object], tmp_path: Path) -> None:
    env: dict[str, str] = world["env"]  # type: ignore[assignment]
    state, policy, owner = tmp_path / "state", tmp_path / "policy.toml", tmp_path / "owner"
    policy.write_text('name = "cluster"\nallow_simulation = true\n')
    subprocess.run(
        [
            BIN / "cchet",
            "broker",
            "cluster",
            "init",
            "--state",
            state,
            "--policy",
            policy,
            "--owner-credentials",
            owner,
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    served = broker_serve(
        "--state", state, "--policy", policy, "--audit-log", tmp_path / "audit.jsonl",
        "--simulation-keys", world["sim"], env=env,
    )  # fmt: skip
    with served as broker:
        _join_and_check(world, tmp_path, broker.url, broker.broker_id, owner)


def _join_and_check(world: dict[str, object], tmp_path: Path, url: str, broker_id: str, owner: Path) -> None:
    env: dict[str, str] = world["env"]  # type: ignore[assignment]
    procs: Processes = world["procs"]  # type: ignore[assignment]
    port = _free_port()
    node_env = env | {"CCHET_SIMULATE": "tdx", "CCHET_SIM_KEY_DIR": str(world["sim"])}
    join = [BIN / "cchet", "start", "--broker", url, "--broker-id", broker_id, "--"]
    head = procs.start(
        [
            *join,
            "--head",
            "--port",
            port,
            "--temp-dir",
            world["temp_dir"],
            "--num-cpus",
            "1",
            "--include-dashboard=false",
            "--block",
        ],
        node_env,
        tmp_path / "head.log",
    )
    _wait_started(head, tmp_path / "head.log")
    workers = []
    for i in range(2):  # one at a time: two raylets starting at once can time out on a loaded 2-core machine
        log = tmp_path / f"node{i}.log"
        workers.append(
            procs.start([*join, "--address", f"127.0.0.1:{port}", "--num-cpus", "1", "--block"], node_env, log)
        )
        _wait_started(workers[-1], log)
    evil = subprocess.run(
        [*join, "--address", f"127.0.0.1:{port}", "--num-cpus", "1", "--block"],
        env=env | {"CCHET_SIMULATE": "tdx", "CCHET_SIM_KEY_DIR": str(world["evil"])},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert evil.returncode == 1 and "key release denied" in evil.stderr, evil.stderr[-2000:]
    assert "starting Ray" not in evil.stderr
    for w in workers:
        assert w.poll() is None
    tls = {
        "RAY_USE_TLS": "1",
        "RAY_TLS_CA_CERT": str(owner / "ca.pem"),
        "RAY_TLS_SERVER_CERT": str(owner / "cert.pem"),
        "RAY_TLS_SERVER_KEY": str(owner / "key.pem"),
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": (owner / "token").read_text(),
    }
    probe = (
        "import ray, time\n"
        f"ray.init(address='127.0.0.1:{port}')\n"
        "for _ in range(60):\n"
        "    alive = sum(n['Alive'] for n in ray.nodes())\n"
        "    if alive >= 3: break\n"
        "    time.sleep(1)\n"
        "print('ALIVE', alive)\n"
    )
    # the same short connection budget that turns strangers away below lets the owner in
    give_up_soon = {"RAY_NUM_REDIS_GET_RETRIES": "3", "RAY_gcs_rpc_server_reconnect_timeout_s": "5"}

    def connect(creds: dict[str, str]) -> str:
        """What a driver with ``creds`` saw of the cluster (its output, or that it timed out)."""
        try:
            out = subprocess.run(
                [sys.executable, "-c", probe],
                env=env | creds | give_up_soon,
                capture_output=True,
                text=True,
                timeout=90,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return "timed out"
        return out.stdout + out.stderr[-3000:]

    answer = connect(tls)
    assert "ALIVE 3" in answer, answer
    # the owner's cchet driver: every node proves, in its attested answer, that it holds the credentials the
    # broker released to it -- that, not the driver's environment, makes the cluster hardened
    driver = tmp_path / "driver.py"
    driver.write_text(
        "import cchet\n\n\n"
        "@cchet.remote\n"
        "def double(x: int) -> int:\n"
        "    return 2 * x\n\n\n"
        f"session = cchet.init(address='127.0.0.1:{port}', simulate='tdx')\n"
        "print('HARDENED', session.hardened, [row['hardened'] for row in session.status()])\n"
        "print('CALL', cchet.get(double.remote(21)))\n"
        "cchet.shutdown()\n"
    )
    out = subprocess.run(
        [sys.executable, str(driver)],
        env=env | tls | {"CCHET_SIM_KEY_DIR": str(world["sim"])},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert "HARDENED True [True, True, True]" in out.stdout, out.stdout + out.stderr[-3000:]
    assert "CALL 42" in out.stdout, out.stdout + out.stderr[-3000:]  # a multi-node cluster that proved it
    # a second job without the cluster token -- with and without the TLS files -- cannot reach the nodes
    strangers = {
        "tls, no token": {k: v for k, v in tls.items() if k != "RAY_AUTH_TOKEN"} | {"RAY_AUTH_TOKEN": "0" * 64},
        "no credentials": {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64},
    }
    for who, creds in strangers.items():
        answer = connect(creds)
        assert "ALIVE" not in answer, f"a job with {who} reached the cluster: {answer}"
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert sum(r["event"] == "release" for r in records) == 3, "head and two nodes got the cluster key"
    assert sum(r["event"] == "refusal" for r in records) == 1, "the node without the simulator's keys did not"
