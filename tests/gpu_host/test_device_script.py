"""tests/gpu/device_check.sh's own logic, run here with fake programs on PATH (no GPU, CuPy or CUDA tools).

A fake ``python3`` plays each stage command as a scenario says (ok, fail, sleep past the limit, skip,
write invalid JSON) and hands everything else (JSON checks, the JUnit summary, the closing summary) to
the real interpreter; a fake ``compute-sanitizer`` runs the case and prints a clean or a failing summary.
Checked: a stage that times out, fails or writes bad JSON is recorded and the later stages still run;
the JSON is valid after every stage and after a SIGTERM mid-stage; missing wheels skip what needs them;
a missing sanitizer or budget skips with the reason; the stage commands get the intended arguments.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "gpu" / "device_check.sh"
STAGES = [
    "wheels",
    "versions",
    "pytest",
    "hw_correctness",
    "kernel_bench",
    "channel_bench",
    "task",
    "timing",
    "sanitizer",
]
STAGE_KEYS = {"name", "status", "seconds", "limit_s", "rc", "reason", "data_note", "log", "data", "output_tail"}

FAKE_PYTHON = '''#!{real}
"""Fake python3 for tests/gpu_host/test_device_script.py: plays device_check.sh's stage commands."""
import json, os, sys, time
REAL = {real!r}
argv = sys.argv[1:]
scenario = dict(kv.split("=", 1) for kv in os.environ.get("FAKE_SCENARIO", "").split(",") if "=" in kv)


def real():
    os.execv(REAL, [REAL, *argv])


def identify():
    if argv[:2] == ["-m", "pip"]:
        return "pip", None
    if argv[:2] == ["-m", "pytest"]:
        xml = next(a.split("=", 1)[1] for a in argv if a.startswith("--junitxml="))
        return os.path.basename(xml)[:-4], xml
    if argv and argv[0].endswith("device_probe.py") and argv[1] in ("imports", "versions", "sanitizer-case", "task"):
        return argv[1], argv[2]
    if argv and (argv[0].endswith("bench_gpu.py") or argv[0].endswith("timing.py")):
        return os.path.basename(argv[1])[:-5], argv[1]
    return None, None


name, out = identify()
if name is None:
    real()
with open(os.environ["FAKE_CALLS"], "a") as f:
    f.write(json.dumps({{"stage": name, "argv": argv}}) + "\\n")
how = scenario.get(name, "ok")
if how == "sleep":
    with open(os.path.join(os.environ["FAKE_PIDS"], name + ".pid"), "w") as f:
        f.write(str(os.getpid()))
    print("fake " + name + ": sleeping", flush=True)
    time.sleep(60)
if how == "fail":
    print("fake " + name + ": something broke")
    if name == "imports":
        print("not importable: cryptography (ModuleNotFoundError: fake)")
    sys.exit(1)
if how == "skip" or name == "task":
    print("stage skipped: fake " + name + " cannot run here")
    sys.exit(3)
if name == "pip":
    sys.exit(0)
if name in ("pytest", "hw_correctness"):
    with open(out, "w") as f:
        f.write('<testsuites><testsuite name="pytest" tests="2" failures="0" errors="0" skipped="0" time="0.1">'
                '<testcase classname="t" name="a" time="0.05"/><testcase classname="t" name="b" time="0.05"/>'
                "</testsuite></testsuites>")
    print("2 passed")
    sys.exit(0)
with open(out, "w") as f:
    f.write("{{not json" if how == "badjson" else json.dumps({{"headline": "fake " + name, "argv": argv}}))
print("fake " + name + " done")
'''

FAKE_SANITIZER = """#!/usr/bin/env bash
if [[ "${1:-}" == --version ]]; then echo "fake compute-sanitizer"; exit 0; fi
while [[ "${1:-}" == --* ]]; do shift 2; done
"$@"
rc=$?
if [[ "${FAKE_SANITIZER:-clean}" == errors ]]; then
  echo "========= Invalid __global__ read of size 4 bytes"
  echo "========= ERROR SUMMARY: 2 errors"
  exit 9
fi
echo "========= ERROR SUMMARY: 0 errors"
exit $rc
"""


def make_bin(tmp: Path, *, sanitizer: bool) -> Path:
    bindir = tmp / "bin"
    bindir.mkdir()
    (bindir / "python3").write_text(FAKE_PYTHON.format(real=sys.executable))
    (bindir / "python3").chmod(0o755)
    if sanitizer:
        (bindir / "compute-sanitizer").write_text(FAKE_SANITIZER)
        (bindir / "compute-sanitizer").chmod(0o755)
    return bindir


def environment(tmp: Path, *, sanitizer: bool = True, **extra: str) -> dict[str, str]:
    bindir = make_bin(tmp, sanitizer=sanitizer)
    (tmp / "pids").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CCHET_CHECK_", "FAKE_"))}
    env |= {
        "PATH": f"{bindir}:/usr/bin:/bin",
        "OUT": str(tmp / "out"),
        "CCHET_CHECK_WORK": str(tmp / "work"),
        "CCHET_CHECK_SITE": str(tmp / "site"),
        "CCHET_CHECK_SANITIZER_DIRS": "",
        "FAKE_CALLS": str(tmp / "calls.jsonl"),
        "FAKE_PIDS": str(tmp / "pids"),
    }
    return env | extra


def run_script(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT)], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def gone(pid: int, wait_s: float = 5.0) -> bool:
    """Whether process ``pid`` has ended (a zombie not yet reaped by its new parent counts as ended)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            os.kill(pid, 0)
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (ProcessLookupError, FileNotFoundError):
            return True
        if state == "Z":
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def results(tmp: Path) -> dict[str, Any]:
    doc = json.loads((tmp / "out" / "device_check.json").read_text())
    assert doc["format"] == "cchet-device-check/1"
    for stage in doc["stages"]:
        assert set(stage) == STAGE_KEYS, stage["name"]
        assert stage["status"] in ("ok", "failed", "timeout", "skipped")
    return doc


def by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in doc["stages"]}


def calls(tmp: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (tmp / "calls.jsonl").read_text().splitlines():
        entry = json.loads(line)
        out[entry["stage"]] = entry["argv"]
    return out


def test_clean_run_records_every_stage_in_order(tmp_path: Path) -> None:
    p = run_script(environment(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    doc = results(tmp_path)
    assert doc["complete"] is True
    assert [s["name"] for s in doc["stages"]] == STAGES
    stages = by_name(doc)
    assert {n: s["status"] for n, s in stages.items()} == {
        **dict.fromkeys(STAGES, "ok"),
        "task": "skipped",
    }
    assert stages["task"]["reason"] == "fake task cannot run here"
    assert stages["kernel_bench"]["data"]["headline"] == "fake kernel_bench"
    assert stages["pytest"]["data"]["passed"] == 2  # the real JUnit summary of the fake XML
    assert stages["sanitizer"]["data"]["error_summary"] == "ERROR SUMMARY: 0 errors"
    assert doc["summary"] == {"ok": 8, "failed": 0, "timeout": 0, "skipped": 1}
    assert "cchet device check: 8 ok, 0 failed, 0 timed out, 1 skipped" in p.stdout
    assert (tmp_path / "out" / "summary.txt").read_text().startswith("cchet device check:")
    # At most 8 files come back from a device: the script leaves three.
    assert sorted(os.listdir(tmp_path / "out")) == ["device_check.json", "device_check_logs.tar.gz", "summary.txt"]
    with tarfile.open(tmp_path / "out" / "device_check_logs.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"./pytest.log", "./pytest.xml", "./timing.json", "./sanitizer.log"} <= names

    # The stage commands got the intended arguments.
    argv = calls(tmp_path)
    assert argv["pytest"][-2:] == ["tests/gpu", "--ignore=tests/gpu/test_hw_correctness.py"]
    assert argv["hw_correctness"][-1] == "tests/gpu/test_hw_correctness.py"
    assert not any("gpu_host" in a for a in argv["pytest"] + argv["hw_correctness"])  # no CPU-only tests
    kb = argv["kernel_bench"]
    assert kb[kb.index("--only") + 1] == "kernels" and kb[kb.index("--chunks") + 1] == "64K,1M,16M,64M"
    assert kb[kb.index("--size-mib") + 1] == "1024"
    cb = argv["channel_bench"]
    assert cb[cb.index("--slots") + 1] == "4,8,16,auto" and cb[cb.index("--threads") + 1] == "1,2,4,8,16"
    assert cb[cb.index("--budget-s") + 1] == "100"  # its 120 s limit less 20 s
    tm = argv["timing"]
    assert tm[tm.index("--budget-s") + 1] == "75" and "--samples-out" in tm and "--fake" not in tm


def test_timeout_failure_and_bad_json_are_recorded_and_later_stages_still_run(tmp_path: Path) -> None:
    env = environment(
        tmp_path,
        FAKE_SCENARIO="pytest=sleep,kernel_bench=fail,timing=badjson",
        CCHET_CHECK_LIMITS="pytest=2",
        FAKE_SANITIZER="errors",
    )
    p = run_script(env)
    assert p.returncode == 1
    doc = results(tmp_path)
    stages = by_name(doc)
    assert [s["name"] for s in doc["stages"]] == STAGES
    assert stages["pytest"]["status"] == "timeout" and stages["pytest"]["limit_s"] == 2
    assert "limit of 2 s" in stages["pytest"]["reason"]
    assert "fake pytest: sleeping" in stages["pytest"]["output_tail"]
    assert stages["hw_correctness"]["status"] == "ok"  # the stage after the timeout ran
    assert stages["kernel_bench"]["status"] == "failed"
    assert "something broke" in stages["kernel_bench"]["reason"]
    assert stages["channel_bench"]["status"] == "ok"
    assert stages["timing"]["status"] == "ok" and stages["timing"]["data"] is None
    assert "not valid JSON" in stages["timing"]["data_note"]
    assert stages["sanitizer"]["status"] == "failed"
    assert "2 errors" in stages["sanitizer"]["data"]["error_summary"]
    assert doc["summary"] == {"ok": 5, "failed": 2, "timeout": 1, "skipped": 1}
    # The timed-out stage's process group is gone.
    assert gone(int((tmp_path / "pids" / "pytest.pid").read_text()))


def test_missing_wheels_skip_the_stages_that_need_them(tmp_path: Path) -> None:
    p = run_script(environment(tmp_path, FAKE_SCENARIO="imports=fail"))
    assert p.returncode == 1
    stages = by_name(results(tmp_path))
    assert stages["wheels"]["status"] == "failed"
    assert stages["versions"]["status"] == "ok"  # needs no cchet
    for name in STAGES[2:]:
        assert stages[name]["status"] == "skipped", name
        assert "needs cryptography, pycryptodome and an importable cchet" in stages[name]["reason"]
        assert "not importable: cryptography" in stages[name]["reason"]
    assert "pytest" not in calls(tmp_path)


def test_missing_sanitizer_and_stage_selection(tmp_path: Path) -> None:
    p = run_script(environment(tmp_path, sanitizer=False, CCHET_CHECK_STAGES="sanitizer"))
    assert p.returncode == 0
    stages = by_name(results(tmp_path))
    assert stages["wheels"]["status"] == "ok"  # always runs: it decides what the others may import
    assert stages["sanitizer"]["status"] == "skipped"
    assert stages["sanitizer"]["reason"].startswith("compute-sanitizer is not on PATH")
    for name in STAGES[1:-1]:
        assert stages[name]["status"] == "skipped" and stages[name]["reason"].startswith("not selected"), name


def test_a_budget_too_small_skips_with_the_reason(tmp_path: Path) -> None:
    p = run_script(environment(tmp_path, CCHET_CHECK_BUDGET_S="0"))
    assert p.returncode == 0
    stages = by_name(results(tmp_path))
    assert stages["wheels"]["status"] == "skipped"
    assert stages["wheels"]["reason"].startswith("not enough time left in the 0 s budget")
    assert all(s["status"] == "skipped" for s in stages.values())
    assert not (tmp_path / "calls.jsonl").exists()  # nothing ran


def test_sigterm_mid_stage_keeps_valid_json_and_kills_the_stage(tmp_path: Path) -> None:
    env = environment(tmp_path, FAKE_SCENARIO="pytest=sleep")
    proc = subprocess.Popen(["bash", str(SCRIPT)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pidfile = tmp_path / "pids" / "pytest.pid"
    deadline = time.monotonic() + 30
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pidfile.exists(), "the pytest stage never started"
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    doc = results(tmp_path)
    assert doc["complete"] is False
    stages = by_name(doc)
    assert [s["name"] for s in doc["stages"]] == ["wheels", "versions", "pytest"]
    assert stages["versions"]["status"] == "ok"
    assert stages["pytest"]["status"] == "failed" and stages["pytest"]["reason"] == "interrupted by SIGTERM"
    assert gone(int(pidfile.read_text())), "the interrupted stage's process is still running"


def test_script_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    p = subprocess.run([shellcheck, "-x", str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 0, p.stdout
