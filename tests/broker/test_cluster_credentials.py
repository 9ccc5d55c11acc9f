"""Hardened mode's cluster credentials: issued once, rotated on purpose (``cluster init --rotate``), and the
retired cluster key is released to no one again; the state directory is held by one command at a time."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cchet import KeyReleaseDenied
from cchet.attest import Policy
from cchet.attest.simulate.attester import SimulatedAttester
from cchet.attest.simulate.authority import SimulatedAuthority
from cchet.attest.simulate.verifier import simulation_options
from cchet.broker.appraisal import EvidenceAppraiser
from cchet.broker.broker import KeyBroker
from cchet.broker.client import BrokerClient
from cchet.broker.cluster import JOIN_FUNCTION, open_credentials, published_credentials
from cchet.broker.transport import InProcessTransport
from cchet.cli import main
from cchet.runtime.node import holds_cluster_credentials, join_proof

POLICY = 'name = "cluster"\nallow_simulation = true\n'


def _init(state: Path, policy: Path, *extra: str) -> int:
    return main(["broker", "cluster", "init", "--state", str(state), "--policy", str(policy), *extra])


def _join(broker: KeyBroker, authority: SimulatedAuthority, key_id: bytes) -> bytes:
    """What a node running ``cchet start`` gets: the sealed credentials opened with the released key."""
    client = BrokerClient(
        InProcessTransport(broker),
        broker_id=broker.broker_id,
        attester=SimulatedAttester.for_kind("tdx", str(authority.key_dir)),
        node_id="node-a",
    )
    return client.keys([key_id], function=JOIN_FUNCTION)[key_id]  # type: ignore[return-value]


def _broker(state: Path, policy: Path, authority: SimulatedAuthority, audit: Path | None = None) -> KeyBroker:
    return KeyBroker(
        appraiser=EvidenceAppraiser(simulation_options(authority)),
        default_policy=Policy.from_file(policy),
        state_dir=state,
        audit_log=audit,
    )


def test_rotation_retires_the_old_cluster_key(
    tmp_path: Path, authority: SimulatedAuthority, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, policy, audit = tmp_path / "state", tmp_path / "cluster.toml", tmp_path / "audit.jsonl"
    policy.write_text(POLICY)
    assert _init(state, policy) == 0
    first = published_credentials(state)
    assert first is not None
    old_id = bytes.fromhex(first["key_id"])
    old = open_credentials(
        _join(_broker(state, policy, authority), authority, old_id), base64.b64decode(first["credentials"])
    )  # type: ignore[arg-type]
    assert _init(state, policy) == 1, "issued once"
    assert "already issued" in capsys.readouterr().err and published_credentials(state) == first

    assert _init(state, policy, "--rotate", "--audit-log", str(audit), "--owner-credentials", str(tmp_path / "o")) == 0
    assert "restart every node" in capsys.readouterr().out
    second = published_credentials(state)
    assert second is not None and second["key_id"] != first["key_id"]
    new_id = bytes.fromhex(second["key_id"])
    broker = _broker(state, policy, authority, audit)
    with pytest.raises(KeyReleaseDenied, match="was retired"):
        _join(broker, authority, old_id)
    new = open_credentials(_join(broker, authority, new_id), base64.b64decode(second["credentials"]))  # type: ignore[arg-type]
    assert new.cert_pem == (tmp_path / "o" / "cert.pem").read_bytes() and new.token != old.token
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    [rotation] = [r for r in records if r["event"] == "rotation"]
    assert rotation["key_ids"] == [first["key_id"]] and second["key_id"] in rotation["reasons"][0]

    # a node still running on the retired credentials cannot prove them to a driver holding the new ones
    env = old.write(tmp_path / "old")
    monkeypatch.setenv("RAY_USE_TLS", env["RAY_USE_TLS"])
    monkeypatch.setenv("RAY_TLS_SERVER_KEY", env["RAY_TLS_SERVER_KEY"])
    nonce = bytes(range(32))
    proof = join_proof(nonce, "node-a")
    assert holds_cluster_credentials(proof, nonce, "node-a", old.cert_pem)
    assert not holds_cluster_credentials(proof, nonce, "node-a", new.cert_pem)
    assert not holds_cluster_credentials(proof, nonce, "node-b", old.cert_pem), "bound to the node id"


def test_rotate_needs_credentials_to_rotate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "cluster.toml"
    policy.write_text(POLICY)
    assert _init(tmp_path / "state", policy, "--rotate") == 1
    assert "no cluster credentials to rotate" in capsys.readouterr().err


def test_a_running_broker_holds_its_state_directory(tmp_path: Path) -> None:
    """``key add`` or ``cluster init`` beside a running ``broker serve`` would be overwritten when the broker
    next writes its key store: they refuse while it runs."""
    state, policy = tmp_path / "state", tmp_path / "cluster.toml"
    policy.write_text(POLICY)
    serve = subprocess.Popen(
        [sys.executable, "-m", "cchet.cli", "broker", "serve", "--state", str(state), "--policy", str(policy),
         "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        assert serve.stdout is not None and "serving" in serve.stdout.readline()
        refused = subprocess.run(
            [sys.executable, "-m", "cchet.cli", "broker", "cluster", "init", "--state", str(state)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert refused.returncode == 1 and "stop it first" in refused.stderr, refused.stderr
        assert published_credentials(state) is None
    finally:
        serve.terminate()
        serve.wait(timeout=30)
    deadline = time.time() + 30
    while _init(state, policy) != 0:
        assert time.time() < deadline
        time.sleep(0.2)
