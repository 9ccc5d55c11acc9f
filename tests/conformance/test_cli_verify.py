"""``cchet verify`` on every kind of real fixture: exit 0 when the evidence verifies and the policy passes,
1 with a one-line reason and the full list otherwise, 2 for usage errors; ``--json`` carries claims, TCB
statuses with advisory ids and every failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cchet.cli import main
from tests.conftest import fixture_path

SDK = "nvidia_attestation_sdk/unit_testdata/"
GPU = SDK + "sample_attestation_data/gpu/"


@pytest.fixture(autouse=True)
def _empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCHET_COLLATERAL_DIR", str(tmp_path / "cache"))


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["verify", *args])
    return code, capsys.readouterr().out


def f(relative: str) -> str:
    return str(fixture_path(relative))


def test_tdx_quote_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(
        capsys,
        f("dcap_qvl/tdx_quote"),
        "--collateral",
        f("dcap_qvl/tdx_quote_collateral.json"),
        "--at",
        "2025-07-19T10:00:34Z",
    )
    assert code == 0 and out.startswith("OK: tdx evidence verifies")
    assert "not pinned" in out


def test_sgx_quote_status_is_a_default_policy_violation(capsys: pytest.CaptureFixture[str]) -> None:
    args = (f("dcap_qvl/sgx_quote"), "--collateral", f("dcap_qvl/sgx_quote_collateral.json"), "--at", "1752919277")
    code, out = run(capsys, *args)
    assert code == 1
    first = out.splitlines()[0]
    assert "ConfigurationAndSWHardeningNeeded" in first and "INTEL-SA-00289, INTEL-SA-00615" in first
    code, out = run(capsys, *args, "--verify-only")
    assert code == 0
    code, out = run(capsys, *args, "--verify-only", "--json")
    doc = json.loads(out)
    assert doc["ok"] and doc["devices"][0]["tcb_status"] == "ConfigurationAndSWHardeningNeeded"
    assert doc["devices"][0]["advisory_ids"] == ["INTEL-SA-00289", "INTEL-SA-00615"]
    assert doc["claims"]["cpu"]["mrenclave"].startswith("33d8736d")


def test_outdated_quote_fails_with_the_tcb_reason(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(
        capsys,
        f("dcap_qvl/tdx_quote_outdated"),
        "--collateral",
        f("dcap_qvl/tdx_quote_outdated_collateral.json"),
        "--at",
        "2026-03-20T10:41:14Z",
        "--json",
    )
    doc = json.loads(out)
    assert code == 1 and [x["check"] for x in doc["failures"]] == ["intel.tcb_level"]
    assert doc["failures"][0]["error"] == "TcbError"


def test_quote_without_collateral(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, f("go_tdx_guest/tdx_prod_quote_SPR_E4.dat"), "--at", "2023-07-01T01:00:00Z")
    assert code == 1 and "no Intel collateral" in out.splitlines()[0]


def test_snp_debug_report(capsys: pytest.CaptureFixture[str]) -> None:
    args = (
        f("go_sev_guest/attestation.bin"),
        "--certs",
        f("go_sev_guest/vcek.testcer"),
        "--certs",
        f("go_sev_guest/milan.testcer"),
        "--at",
        "2024-01-01T00:00:00Z",
    )
    code, out = run(capsys, *args)
    assert code == 1 and "debug" in out.splitlines()[0]
    assert run(capsys, *args, "--verify-only")[0] == 0
    assert run(capsys, *args, "--verify-only", "--nonce", "0102030405" + "00" * 59)[0] == 0
    code, out = run(capsys, *args, "--verify-only", "--nonce", "00" * 64)
    assert (code == 1 and "amd.nonce" in out) or "report_data is" in out


def test_virtee_report_with_a_certs_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "certs"
    folder.mkdir()
    (folder / "b.der").write_bytes(fixture_path("virtee_sev/vcek_milan.der").read_bytes())
    (folder / "a.pem").write_bytes(fixture_path("virtee_sev/cert_chain_milan").read_bytes())
    code, out = run(
        capsys,
        f("virtee_sev/report_milan.hex"),
        "--kind",
        "snp",
        "--certs",
        str(folder),
        "--at",
        "2024-01-01T00:00:00Z",
    )
    assert code == 0, out


def test_gpu_reports(capsys: pytest.CaptureFixture[str]) -> None:
    base = (
        f(GPU + "hopperAttestationReport.txt"),
        "--kind",
        "spdm",
        "--certs",
        f(GPU + "hopperCertChain.txt"),
        "--at",
        "2025-06-01T00:00:00Z",
    )
    code, out = run(capsys, *base)
    assert code == 1 and "measurements not compared" in out.splitlines()[0]
    assert run(capsys, *base, "--verify-only")[0] == 0
    code, out = run(capsys, *base, "--verify-only", "--nonce", "00" * 32, "--json")
    assert code == 1 and json.loads(out)["failures"][0]["error"] == "NonceMismatchError"
    code, out = run(
        capsys, *base, "--rims", f("nvtrust/local_gpu_verifier_samples/1010_0200_882_96005E0001_PROD.swidtag"), "--json"
    )
    doc = json.loads(out)
    assert doc["devices"][0]["rim_versions"] == ["96.00.5E.00.01"] and code == 1  # the driver RIM is missing
    code, out = run(
        capsys,
        f(GPU + "hopperAttestationReportInvalidSignature.txt"),
        "--certs",
        f(GPU + "hopperCertChainExpired.txt"),
        "--verify-only",
    )
    assert code == 1 and "SPDM signature" in out.splitlines()[0]
    code, out = run(
        capsys, f(GPU + "blackwellAttestationReport.txt"), "--certs", f(GPU + "blackwellCertChain.txt"), "--verify-only"
    )
    assert code == 0


@pytest.mark.parametrize(
    "args",
    [
        ("--nonce", "00"),
        ("--nonce", "zz"),
        ("--at", "2025-01-01T00:00:00"),
        ("--policy", "/nonexistent/policy.toml"),
        ("--collateral", "/nonexistent"),
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], args: tuple[str, ...]) -> None:
    assert run(capsys, f("dcap_qvl/tdx_quote"), *args)[0] == 2


def test_policy_and_verify_only_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["verify", f("dcap_qvl/tdx_quote"), "--policy", "p.toml", "--verify-only"])
    assert e.value.code == 2


def test_policy_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    policy = tmp_path / "p.toml"
    policy.write_text('name = "pin"\ntee_kinds = ["tdx"]\nmrtd = ["' + "00" * 48 + '"]\n')
    code, out = run(
        capsys,
        f("dcap_qvl/tdx_quote"),
        "--collateral",
        f("dcap_qvl/tdx_quote_collateral.json"),
        "--at",
        "2025-07-19T10:00:34Z",
        "--policy",
        str(policy),
    )
    assert code == 1 and "policy.mrtd" in out.splitlines()[0]
    mrtd = "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
    policy.write_text(f'name = "pin"\ntee_kinds = ["tdx"]\nmrtd = ["{mrtd}"]\n')
    code, out = run(
        capsys,
        f("dcap_qvl/tdx_quote"),
        "--collateral",
        f("dcap_qvl/tdx_quote_collateral.json"),
        "--at",
        "2025-07-19T10:00:34Z",
        "--policy",
        str(policy),
    )
    assert code == 0, out


def test_unparseable_evidence_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x04\x00\x02\x00" + bytes(10))
    code, out = run(capsys, str(bad))
    assert code == 1 and out.startswith("FAILED: evidence does not parse")
