"""``cchet info`` and the probe behind it: honest statements about what holds on a machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cchet import cli
from cchet.platform import commands, info
from cchet.platform.fake_nvml import FakeGpu, FakeNvml
from cchet.platform.tee import detect_tee


def test_tee_detection_on_a_fake_root(tmp_path: Path) -> None:
    assert not detect_tee(tmp_path).detected
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "tdx_guest").touch()
    tee = detect_tee(tmp_path)
    assert tee.kind == "tdx" and tee.found == ("/dev/tdx_guest",)
    (tmp_path / "dev" / "tdx_guest").unlink()
    (tmp_path / "dev" / "sev-guest").touch()
    assert detect_tee(tmp_path).kind == "snp"


def test_probe_without_gpu_or_tee_says_nothing_is_protected(tmp_path: Path) -> None:
    found = info.probe(nvml_module=FakeNvml(available=False), root=tmp_path)
    text = found.render()
    assert "CPU TEE: none detected" in text
    assert "no CPU TEE detected" in text and "visible to the host" in text
    assert "GPU path is unavailable" in text
    assert found.gpus == []


def test_probe_cc_on_and_off(tmp_path: Path) -> None:
    on = info.probe(
        nvml_module=FakeNvml(gpus=[FakeGpu(protected_kib=1 << 20)], cc_enabled=True, ready=False),
        root=tmp_path,
    )
    assert on.gpus[0].cc_on and on.gpus[0].memory_protected and on.gpus[0].ready is False
    assert any("CC on, GPU memory protected, not ready" in s for s in on.statements())
    off = info.probe(nvml_module=FakeNvml(gpus=[FakeGpu()], cc_enabled=False), root=tmp_path)
    assert not off.gpus[0].memory_protected
    assert any("GPU memory is NOT protected" in s for s in off.statements())
    assert "SIMULATED" in off._repr_html_()


def test_cchet_info_command(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeNvml(gpus=[FakeGpu(protected_kib=1 << 20)], cc_enabled=True, ready=True)
    monkeypatch.setattr(commands, "probe", lambda: info.probe(nvml_module=fake, root=Path("/nonexistent")))
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "GPU 0: NVIDIA H100 80GB HBM3 (SIMULATED); CC on; ready yes; memory protected yes" in out
    assert cli.main(["info", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["gpus"][0]["memory_protected"] is True and data["statements"]


def test_cchet_info_on_this_machine(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "what holds here:" in out and "CPU TEE:" in out
