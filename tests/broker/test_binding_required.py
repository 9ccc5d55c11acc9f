"""A policy with ``require_binding = false`` never reaches the broker: replayed evidence must never release a key."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cchet.attest import Policy
from cchet.broker.broker import KeyBroker
from cchet.cli import main

UNBOUND = Policy(name="unbound", allow_simulation=True, require_binding=False)
WHY = "require_binding = false, which the key broker refuses"


def _policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "unbound.toml"
    path.write_text('name = "unbound"\nallow_simulation = true\nrequire_binding = false\n')
    return path


def test_as_the_default_policy(make_broker: Callable[..., KeyBroker], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=WHY) as info:
        make_broker(UNBOUND)
    assert "cchet verify" in str(info.value), "the error says what the flag is for"
    assert not (tmp_path / "state").exists(), "refused before any state is created"


def test_registered_or_with_a_key(make_broker: Callable[..., KeyBroker]) -> None:
    broker = make_broker()
    with pytest.raises(ValueError, match=WHY):
        broker.register_policy(UNBOUND)
    with pytest.raises(ValueError, match=WHY):
        broker.add_key(policy=UNBOUND)
    assert len(broker.keys) == 0
    with pytest.raises(KeyError):
        broker.policy(UNBOUND.policy_id)
    assert len(make_broker().keys) == 0, "the same state directory loads: the refused policy was not persisted"


def test_found_in_a_state_directory(make_broker: Callable[..., KeyBroker], tmp_path: Path) -> None:
    make_broker()
    planted = tmp_path / "state" / "policies" / "planted.json"
    planted.write_text(json.dumps(UNBOUND.to_dict()))
    with pytest.raises(ValueError, match=WHY) as info:
        make_broker()
    assert str(planted) in str(info.value)


def test_cchet_broker_key_add(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    argv = ["broker", "key", "add", "--state", str(state), "--out", str(tmp_path / "k.key")]
    assert main([*argv, "--policy", str(_policy_file(tmp_path))]) == 1
    assert WHY in capsys.readouterr().err
    assert not (tmp_path / "k.key").exists()


def test_cchet_broker_serve(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("cchet")
    served = subprocess.run(
        [exe, "broker", "serve", "--state", tmp_path / "state", "--port", "0", "--policy", _policy_file(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert served.returncode == 1, served
    assert WHY in served.stderr and "serving" not in served.stdout
