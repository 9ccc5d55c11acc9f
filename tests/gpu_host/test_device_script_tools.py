"""The Python steps of tests/gpu/device_check.sh without a GPU: tests/gpu/device_probe.py (parsers, JUnit
summary, versions with fake nvidia-smi and nvcc on PATH, the task stage's skip and call paths, imports) and
bench/bench_gpu.py on the SIMULATED device (the 64 MiB chunk size, the slots x threads sweep, its budget)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from tests.gpu import device_probe

REPO = Path(__file__).resolve().parents[2]

PTXAS = """\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'cchet_gcm_open_finish' for 'sm_90'
ptxas info    : Function properties for cchet_gcm_open_finish
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 100 registers, used 1 barriers, 4 bytes smem
ptxas info    : Compiling entry function 'cchet_gcm_seal_segments' for 'sm_90'
ptxas info    : Function properties for cchet_gcm_seal_segments
    8 bytes stack frame, 8 bytes spill stores, 8 bytes spill loads
ptxas info    : Used 64 registers, used 1 barriers, 8 bytes cumulative stack size, 33136 bytes smem
ptxas info    : Compile time = 218.030 ms
"""

SMI_CSV = """\
name, driver_version, memory.total [MiB], compute_cap, pstate, clocks.sm [MHz], clocks.max.sm [MHz], \
clocks.mem [MHz], power.limit [W], temperature.gpu, persistence_mode
NVIDIA H100 80GB HBM3, 580.82.07, 81559 MiB, 9.0, P0, 1980 MHz, 1980 MHz, 2619 MHz, 700.00 W, 31, Enabled
"""


def test_parse_ptxas() -> None:
    got = device_probe.parse_ptxas(PTXAS)
    assert got["cchet_gcm_seal_segments"] == {
        "stack_bytes": 8,
        "spill_store_bytes": 8,
        "spill_load_bytes": 8,
        "registers": 64,
        "smem_bytes": 33136,
    }
    assert got["cchet_gcm_open_finish"]["registers"] == 100 and got["cchet_gcm_open_finish"]["smem_bytes"] == 4


def test_parse_smi_csv() -> None:
    (row,) = device_probe.parse_smi_csv(SMI_CSV)
    assert row["name"] == "NVIDIA H100 80GB HBM3" and row["compute_cap"] == "9.0"
    assert row["memory.total [MiB]"] == "81559 MiB"
    assert device_probe.parse_smi_csv("") == []


def _fake_tool(bindir: Path, name: str, body: str) -> None:
    path = bindir / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)


def test_versions_with_fake_nvidia_smi_and_nvcc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (tmp_path / "smi.csv").write_text(SMI_CSV)
    (tmp_path / "ptxas.txt").write_text(PTXAS)
    _fake_tool(
        bindir,
        "nvidia-smi",
        f'case "$*" in *--query-gpu*) cat {tmp_path}/smi.csv ;; *conf-compute*) echo "CC status: ON" ;;'
        ' *) echo "fake nvidia-smi banner" ;; esac\n',
    )
    _fake_tool(bindir, "nvcc", f'echo "$@" >> {tmp_path}/nvcc.args\ncat {tmp_path}/ptxas.txt >&2\n')
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    monkeypatch.setattr(device_probe, "gpu_missing", lambda: "no GPU in this test")
    out = tmp_path / "versions.json"
    assert device_probe.versions(out) == 0
    info = json.loads(out.read_text())
    assert info["nvidia_smi"][0]["name"] == "NVIDIA H100 80GB HBM3"
    assert info["nvidia_smi_conf_compute"] == "CC status: ON"
    assert info["kernels_nvcc"]["entries"]["cchet_gcm_seal_segments"]["spill_store_bytes"] == 8
    assert info["kernels_cupy"] == {"error": "no GPU in this test"}
    (args,) = (tmp_path / "nvcc.args").read_text().splitlines()  # one compile, for the device's architecture
    arch = "-arch=sm_90" if "error" in info["cupy"] else ""  # from nvidia-smi's compute_cap without CuPy
    assert arch in args and "--resource-usage" in args and "kernels/aes_gcm.cu" in args
    assert "NVIDIA H100 80GB HBM3, driver 580.82.07" in info["headline"]
    assert "seal_segments 64 regs, 33136 B smem, 8 B spill" in info["headline"]


def test_versions_records_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setattr(device_probe.os, "access", lambda *a: False)  # no /usr/local/cuda/bin/nvcc either
    monkeypatch.setattr(device_probe, "gpu_missing", lambda: "no GPU in this test")
    out = tmp_path / "v.json"
    assert device_probe.versions(out) == 0
    info = json.loads(out.read_text())
    assert info["nvidia_smi"] == {"error": "nvidia-smi not found on PATH"}
    assert info["kernels_nvcc"]["error"].startswith("nvcc not found")
    assert info["headline"].startswith("no nvidia-smi")


def _junit(tmp_path: Path, cases: str, counts: str) -> Path:
    path = tmp_path / "r.xml"
    path.write_text(f'<testsuites><testsuite name="pytest" {counts} time="1.5">{cases}</testsuite></testsuites>')
    return path


def test_junit_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = (
        '<testcase classname="tests.gpu.t" name="ok" time="0.5"/>'
        '<testcase classname="tests.gpu.t" name="bad" time="0.7"><failure message="assert 1 == 2">trace</failure>'
        "</testcase>"
        '<testcase classname="tests.gpu.t" name="skip" time="0"><skipped message="CC mode is off"/></testcase>'
    )
    xml = _junit(tmp_path, cases, 'tests="3" failures="1" errors="0" skipped="1"')
    assert device_probe.junit(xml, tmp_path / "s.json") == 0
    s = json.loads((tmp_path / "s.json").read_text())
    assert (s["passed"], s["failures"], s["skipped"]) == (1, 1, 1)
    assert s["failed"][0]["test"] == "tests.gpu.t::bad" and s["failed"][0]["message"] == "assert 1 == 2"
    assert s["skip_reasons"] == {"CC mode is off": 1} and s["slowest"][0]["test"] == "tests.gpu.t::bad"
    assert s["headline"] == "1 passed, 1 failed, 0 errors, 1 skipped in 1.5 s"
    skipped = _junit(tmp_path, '<testcase classname="c" name="n"><skipped message="no GPU"/></testcase>',
                     'tests="1" failures="0" errors="0" skipped="1"')  # fmt: skip
    assert device_probe.junit(skipped, tmp_path / "s.json") == 3
    assert "stage skipped: all 1 tests skipped: no GPU" in capsys.readouterr().out
    assert device_probe.junit(tmp_path / "missing.xml", tmp_path / "s.json") == 1
    assert "error" in json.loads((tmp_path / "s.json").read_text())


def test_task_is_skipped_without_the_benchmark_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "cchet.bench.gpu_tasks" else real(name, *a)
    )
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, as on the GPU machine
    assert device_probe.task(tmp_path / "t.json") == 3
    info = json.loads((tmp_path / "t.json").read_text())
    assert "import ray failed" in info["skipped"] and "cchet.bench.gpu_tasks is absent" in info["skipped"]


def test_task_calls_the_benchmark_when_ray_and_module_are_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    called: list[Path] = []

    def bench_task_round_trip(out: Path) -> None:
        called.append(out)
        out.write_text(json.dumps({"headline": "task 1.0x"}))

    mod: Any = types.ModuleType("cchet.bench.gpu_tasks")
    mod.__spec__ = importlib.machinery.ModuleSpec("cchet.bench.gpu_tasks", None)
    mod.bench_task_round_trip = bench_task_round_trip
    monkeypatch.setitem(sys.modules, "cchet.bench.gpu_tasks", mod)
    fake_ray: Any = types.ModuleType("ray")
    fake_ray.__version__ = "0-fake"
    monkeypatch.setitem(sys.modules, "ray", fake_ray)
    assert device_probe.task(tmp_path / "t.json") == 0
    assert called == [tmp_path / "t.json"]
    assert json.loads((tmp_path / "t.json").read_text()) == {"headline": "task 1.0x"}


def test_imports_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert device_probe.imports(tmp_path / "w.json") == 0
    info = json.loads((tmp_path / "w.json").read_text())
    assert info["ok"] is True and "version" in info["cryptography"] and "version" in info["pycryptodome"]
    doc = {
        "stages": [
            {"name": "wheels", "status": "ok", "seconds": 1.0, "reason": None, "data": {"headline": "fine"}},
            {"name": "pytest", "status": "skipped", "seconds": 2.0, "reason": "no GPU", "data": {"headline": "0"}},
        ]
    }
    (tmp_path / "c.json").write_text(json.dumps(doc))
    capsys.readouterr()
    assert device_probe.summary(tmp_path / "c.json") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["wheels", "ok", "1.0s", "fine"]
    assert lines[1].split() == ["pytest", "skipped", "2.0s", "no", "GPU"]


def test_sanitizer_case_without_a_gpu_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_probe, "gpu_missing", lambda: "no GPU in this test")
    assert device_probe.sanitizer_case(tmp_path / "s.json") == 3
    assert json.loads((tmp_path / "s.json").read_text()) == {"skipped": "no GPU in this test"}


def test_main_refuses_bad_usage() -> None:
    assert device_probe.main([]) == 2
    assert device_probe.main(["junit", "only-one"]) == 2


# ------------------------------------------------------------------------------------ bench/bench_gpu.py


@pytest.fixture(scope="module")
def bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_gpu_under_test", REPO / "bench" / "bench_gpu.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_parsers(bench: Any) -> None:
    assert [bench.parse_size(s) for s in ("64K", "1M", "16M", "64MiB", "4096")] == [
        65536,
        1 << 20,
        16 << 20,
        64 << 20,
        4096,
    ]
    assert bench.parse_slots("2,auto,8") == [2, None, 8]
    assert [bench.size_name(n) for n in (65536, 1 << 20, 64 << 20, 100)] == ["64K", "1M", "64M", "100"]


def test_bench_fake_kernels_include_64_mib_chunks(bench: Any, tmp_path: Path) -> None:
    out = tmp_path / "k.json"
    assert bench.main([str(out), "--fake", "--only", "kernels", "--chunks", "64K,64M", "--repeats", "5"]) == 0
    doc = json.loads(out.read_text())
    assert list(doc["kernels"]) == ["chunk_65536", "chunk_67108864"]
    for r in doc["kernels"].values():
        assert r["baseline"] == {"seal": "d2d_copy", "open": "d2d_copy"}
        assert set(r["ratio_to_baseline"]) == {"seal", "open"} and len(r["samples_s"]["open"]) == 5
    assert doc["device"]["simulated"] is True and "channel" not in doc
    assert doc["headline"].startswith("open GB/s by chunk (vs d2d copy): 64K")


def test_bench_fake_channel_sweep_and_budget(bench: Any, tmp_path: Path) -> None:
    out = tmp_path / "c.json"
    argv = [str(out), "--fake", "--only", "channel", "--slots", "2,auto", "--threads", "1", "--repeats", "5"]
    assert bench.main(argv) == 0
    ch = json.loads(out.read_text())["channel"]
    assert list(ch["configs"]) == ["slots_2_threads_1", "slots_auto_threads_1"] and ch["skipped"] == []
    cfg = ch["configs"]["slots_2_threads_1"]
    assert cfg["slots"] == 2 and cfg["threads"] == 1 and cfg["simulated"] is True
    assert cfg["baseline"] == {"h2d_channel": "pinned_h2d", "d2h_channel": "pinned_d2h", "h2d_presealed": "pinned_h2d"}
    assert ch["configs"]["slots_auto_threads_1"]["slots"] >= 3  # the channel's own default
    assert bench.main([*argv, "--threads", "1,2", "--budget-s", "0"]) == 0
    ch = json.loads(out.read_text())["channel"]
    assert ch["configs"] == {} and len(ch["skipped"]) == 4


def test_bench_without_a_gpu_says_why(bench: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed here: the real benchmark would run")
    assert bench.main([str(tmp_path / "b.json"), "--repeats", "5"]) == 3
    assert capsys.readouterr().out.startswith("stage skipped: bench_gpu needs CuPy and an NVIDIA GPU")
