"""``cchet verify`` and ``cchet collateral status`` without the real fixtures: simulated evidence is refused
under the pinned vendor roots (exit 1, the chain named), and the cache commands work on an empty cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cchet.attest.simulate import SimulatedAuthority, simulate_composite
from cchet.cli import main


@pytest.fixture(autouse=True)
def _empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCHET_COLLATERAL_DIR", str(tmp_path / "cache"))


def test_simulated_composite_is_refused_by_the_real_verifier(
    authority: SimulatedAuthority, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "evidence.json"
    path.write_bytes(simulate_composite(authority, "tdx", report_data=bytes(64), gpus=1).to_bytes())
    assert main(["verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAILED: verification failed: pck_chain: chain does not end at a trusted root")
    assert main(["verify", str(path), "--json", "--verify-only"]) == 1
    doc = json.loads(capsys.readouterr().out)
    checks = {f["check"] for f in doc["failures"]}
    assert {"intel.pck_chain", "nvidia.chain"} <= checks
    assert [d["device"] for d in doc["devices"]] == ["cpu", "gpu0"]


def test_simulated_snp_report_needs_certificates(
    authority: SimulatedAuthority, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cchet.attest.simulate.snp import simulate_snp_report

    report, _ = simulate_snp_report(authority, report_data=bytes(64))
    path = tmp_path / "report.bin"
    path.write_bytes(report.to_bytes())
    assert main(["verify", str(path), "--verify-only"]) == 1
    assert "no VCEK/VLEK certificate available" in capsys.readouterr().out


def test_collateral_status_on_an_empty_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["collateral", "status", "--cache", str(tmp_path / "none")]) == 0
    assert "(0 item(s))" in capsys.readouterr().out


def test_a_non_evidence_file_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "chain.pem"
    from cchet.attest.formats.certchain import der_to_pem

    path.write_bytes(der_to_pem(SimulatedAuthority.open(tmp_path / "a").der("intel_root")))
    assert main(["verify", str(path)]) == 2
