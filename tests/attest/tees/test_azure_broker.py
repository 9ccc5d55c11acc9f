"""A simulated Azure confidential VM gets keys from an in-process broker, calls placed on tee='az-snp'/'az-tdx'
go only to nodes whose appraised evidence proves that kind, and the command line handles the kinds."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from cchet import KeyReleaseDenied
from cchet.attest.appraise import appraise
from cchet.attest.binding import Binding
from cchet.attest.policy import Policy
from cchet.attest.simulate import SimulatedAuthority, simulate_composite, simulation_options
from cchet.attest.tees import tee
from cchet.broker.client import BrokerClient
from cchet.cli import main
from tests.broker.owner import Owner, function_id, simulated_broker, simulated_node

KINDS = ("az-snp", "az-tdx")


def _reference(authority: SimulatedAuthority, kind: str) -> dict[str, Any]:
    report, _ = tee(kind).simulate(authority, report_data=bytes(64))
    return tee(kind).reference(report)


@pytest.mark.parametrize("kind", KINDS)
def test_a_simulated_azure_node_gets_keys_from_the_broker(
    authority: SimulatedAuthority, tmp_path: Path, kind: str
) -> None:
    section = kind.replace("-", "_")
    policy = Policy(name="azure", tee_kinds=(kind,), allow_simulation=True, **{section: _reference(authority, kind)})
    broker = simulated_broker(authority, tmp_path, policy)
    key, owner = broker.add_key(), Owner(broker)

    def client(spec: str, **overrides: Any) -> BrokerClient:
        return simulated_node(broker, authority, spec, "node-azure", **overrides)

    def ticket(tee_kind: str) -> bytes:
        return owner.ticket("f", [key.key_id], tee=tee_kind)

    function = function_id("f").hex()
    released = client(kind).keys([key.key_id], function=function, ticket=ticket(kind))
    assert released[key.key_id] == key and released.simulated
    with pytest.raises(KeyReleaseDenied, match=rf"{section}\.pcrs"):  # another boot chain
        client(kind, cpu={"pcrs": {11: bytes(32)}}).keys([key.key_id], function=function, ticket=ticket(kind))
    with pytest.raises(KeyReleaseDenied, match="tee="):  # a call placed on the other Azure kind
        client(kind).keys([key.key_id], function=function, ticket=ticket("az-tdx" if kind == "az-snp" else "az-snp"))
    with pytest.raises(KeyReleaseDenied):  # a plain TDX node cannot run a call placed on this kind
        client("tdx").keys([key.key_id], function=function, ticket=ticket(kind))


@pytest.mark.parametrize("kind", KINDS)
def test_placement_on_an_azure_kind(authority: SimulatedAuthority, kind: str) -> None:
    from cchet.runtime.options import validate_options
    from cchet.runtime.registry import NodeRegistry

    assert validate_options({"tee": kind}).tee == kind
    options = simulation_options(authority)
    policy = Policy(tee_kinds=(kind,), allow_simulation=True)
    nonce = os.urandom(32)
    binding = Binding(os.urandom(32), 0x20, 1, 3, os.urandom(32), os.urandom(32))
    evidence = simulate_composite(authority, kind, nonce=nonce, binding=binding)
    result = appraise(evidence, policy, nonce=nonce, binding=binding, options=options)
    registry = NodeRegistry(bytes(32), options, policy)
    registry._record("node-azure", result, hardened=False)
    other = "az-tdx" if kind == "az-snp" else "az-snp"
    assert registry.qualifying(kind, None) == ["node-azure"] == registry.qualifying("any", None)
    assert registry.qualifying(other, None) == [] and registry.qualifying("snp", None) == []


def test_cli_verify_kind_certs_and_nonce(
    authority: SimulatedAuthority, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``cchet verify --kind az-snp`` runs the real verifier: a simulated report fails there (its root is not a
    vendor's), with its own failures listed, and ``--nonce`` reaches the quote's qualifying data."""
    report, certs = tee("az-snp").simulate(authority, report_data=bytes(range(64)))
    path = tmp_path / "az-snp.bin"
    path.write_bytes(report.to_bytes())
    (tmp_path / "chain.pem").write_bytes(certs)
    argv = ["verify", str(path), "--kind", "az-snp", "--certs", str(tmp_path / "chain.pem"), "--verify-only"]
    assert main([*argv, "--nonce", bytes(range(64)).hex(), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert {f["check"] for f in out["failures"]} == {"amd.chain"}
    assert out["claims"]["cpu"]["kind"] == "az-snp"
    assert main([*argv, "--nonce", "00", "--json"]) == 1
    checks = {f["check"] for f in json.loads(capsys.readouterr().out)["failures"]}
    assert checks == {"amd.chain", "azure.nonce"}


def test_cli_policy_from_evidence(authority: SimulatedAuthority, tmp_path: Path) -> None:
    for kind in KINDS:
        report, _ = tee(kind).simulate(authority, report_data=bytes(64))
        evidence = tmp_path / f"{kind}.bin"
        evidence.write_bytes(report.to_bytes())
        out = tmp_path / f"{kind}.toml"
        assert main(["policy", "from-evidence", str(evidence), "-o", str(out), "--allow-simulation"]) == 0
        policy = Policy.from_file(out)
        assert policy.tee_kinds == (kind,) and policy.pins_cpu(kind)
        assert f"[{kind.replace('-', '_')}]" in out.read_text()
