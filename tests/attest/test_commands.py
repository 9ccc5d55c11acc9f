"""`cchet attest --simulate` and `cchet policy from-evidence`, through cchet.cli.main and the script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cchet.attest import Policy, appraise
from cchet.attest.evidence import CompositeEvidence
from cchet.attest.formats import parse
from cchet.attest.formats.certchain import parse_pem_chain
from cchet.attest.formats.dcap import Quote, TdReportBody
from cchet.attest.simulate import SimulatedAuthority, simulate_composite, simulation_options
from cchet.cli import main
from tests.attest.conftest import NOW
from tests.conftest import REPO, fixture_path


@pytest.mark.parametrize("kind", ["tdx", "snp+gpu", "sgx+2gpu", "az-snp", "az-tdx+gpu", "csv", "cca"])
def test_attest_simulate_json(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["attest", "--simulate", kind, "--key-dir", str(tmp_path / "k"), "--json"]) == 0
    ear = json.loads(capsys.readouterr().out)
    assert ear["ear.status"] == "affirming" and ear["cchet.simulated"] is True
    gpus = 0 if "+" not in kind else int(kind.split("+")[1].removesuffix("gpu") or 1)
    assert sorted(ear["submods"]) == ["cpu", *[f"gpu{i}" for i in range(gpus)]]


def test_attest_simulate_text_says_simulated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["attest", "--simulate", "tdx", "--key-dir", str(tmp_path / "k")]) == 0
    assert "SIMULATED" in capsys.readouterr().out


def test_attest_rejects_unknown_kinds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["attest", "--simulate", "nitro", "--key-dir", str(tmp_path / "k")]) == 1
    assert "expected one of tdx, snp, sgx" in capsys.readouterr().err


def test_attest_out_files_work_with_dcap_qvl(tmp_path: Path) -> None:
    dcap_qvl = pytest.importorskip("dcap_qvl")
    out = tmp_path / "ev.json"
    assert main(["attest", "--simulate", "tdx", "--key-dir", str(tmp_path / "k"), "--out", str(out)]) == 0
    evidence = parse(out.read_bytes())
    assert isinstance(evidence, CompositeEvidence) and evidence.cpu.kind == "tdx"
    raw = Path(f"{out}.cpu.bin").read_bytes()
    assert raw == evidence.cpu.report.to_bytes()
    roots = parse_pem_chain(Path(f"{out}.roots.pem").read_bytes())
    collateral = dcap_qvl.QuoteCollateralV3.from_json(Path(f"{out}.collateral.json").read_text())
    import time

    report = dcap_qvl.verify_with_root_ca(raw, collateral, roots.ders[0], int(time.time()))
    assert report.status == "UpToDate"


def test_policy_from_evidence_pins_and_appraises(tmp_path: Path) -> None:
    key_dir = tmp_path / "k"
    out = tmp_path / "ev.json"
    assert main(["attest", "--simulate", "tdx+gpu", "--key-dir", str(key_dir), "--out", str(out)]) == 0
    policy_path = tmp_path / "policy.toml"
    assert (
        main(
            [
                "policy",
                "from-evidence",
                str(out),
                "-o",
                str(policy_path),
                "--allow-simulation",
                "--name",
                "good",
            ]
        )
        == 0
    )
    policy = Policy.from_file(policy_path)
    evidence = parse(out.read_bytes())
    assert isinstance(evidence, CompositeEvidence)
    quote = evidence.cpu.report
    assert isinstance(quote, Quote) and isinstance(quote.body, TdReportBody)
    assert policy.mrtd == (quote.body.mr_td.hex(),) and policy.tee_kinds == ("tdx",)
    assert policy.gpu_rim_ids == ("NV_GPU_DRIVER_GH100_550.90.07", "NV_GPU_VBIOS_1010_0200_882_96009F0001")
    assert policy.allow_simulation and policy.policy_id.startswith("good:")
    authority = SimulatedAuthority.open(key_dir)
    opts = simulation_options(authority, now=NOW)
    nonce = bytes(32)
    from cchet.attest.binding import Binding

    binding = Binding(bytes(32), 0x20, 1, 3, b"pk", bytes(32))
    same = simulate_composite(authority, "tdx", nonce=nonce, binding=binding, gpus=1)
    assert appraise(same, policy, nonce=nonce, binding=binding, options=opts).accepted
    other = simulate_composite(authority, "tdx", nonce=nonce, binding=binding, cpu={"mr_td": bytes(48)})
    rejected = appraise(other, policy, nonce=nonce, binding=binding, options=opts)
    assert [v.rule for v in rejected.violations] == ["mrtd"]
    assert main(["policy", "from-evidence", str(out), "-o", str(policy_path)]) == 1  # no overwrite
    assert main(["policy", "from-evidence", str(out), "-o", str(policy_path), "--force"]) == 0


def test_policy_from_real_quote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    quote = fixture_path("dcap_qvl/sgx_quote")
    assert main(["policy", "from-evidence", str(quote), "-o", "-"]) == 0
    text = capsys.readouterr()
    assert "33d8736d" in text.out and "mrsigner" in text.out and "SIMULATED" not in text.err


def test_policy_from_gpu_only_evidence_fails(capsys: pytest.CaptureFixture[str]) -> None:
    report = fixture_path("nvidia_attestation_sdk/unit_testdata/hopperAttestationReport.txt")
    assert main(["policy", "from-evidence", str(report), "-o", "-"]) == 1
    assert "no CPU measurements" in capsys.readouterr().err


def test_installed_script(tmp_path: Path) -> None:
    script = shutil.which("cchet", path=str(Path(sys.executable).parent)) or shutil.which("cchet")
    if script is None:
        pytest.skip("the cchet console script is not installed (pip install -e .)")
    env = {**os.environ, "CCHET_SIM_KEY_DIR": str(tmp_path / "k")}
    proc = subprocess.run(
        [script, "attest", "--simulate", "snp"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ACCEPTED" in proc.stdout and "SIMULATED" in proc.stdout
    assert (tmp_path / "k" / "amd_ark.pem").exists()


def test_attest_under_a_policy_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    strict = tmp_path / "strict.toml"
    strict.write_text(Policy(mrtd=["00" * 48]).to_toml())
    assert (
        main(["attest", "--simulate", "tdx", "--key-dir", str(tmp_path / "k"), "--policy", str(strict)]) == 1
    )
    out = capsys.readouterr().out
    assert "REJECTED" in out and "policy.allow_simulation" in out and "policy.mrtd" in out
