"""The kernel loader and the GPU path's behaviour on a machine without CuPy or a GPU."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cchet.errors import DeviceUnavailable
from cchet.gpu import geometry, loader
from cchet.gpu import schedule as sched

HAS_CUPY = importlib.util.find_spec("cupy") is not None
GPU_TESTS = Path(__file__).resolve().parents[1] / "gpu"


def test_import_cchet_gpu_imports_no_cupy() -> None:
    code = (
        "import sys, cchet, cchet.gpu, cchet.gpu.loader, cchet.gpu.channel, cchet.gpu.reference; "
        "bad = [m for m in ('cupy', 'ray', 'pynvml') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_source_inlines_header_with_line_directives() -> None:
    code = loader.source()
    assert code.startswith('#line 1 "aes_gcm.cu"')
    assert '#line 1 "aes_gcm.cuh"' in code
    assert '#include "aes_gcm.cuh"' not in code
    assert re.search(r'#line \d+ "aes_gcm.cu"\n', code.split('#line 1 "aes_gcm.cuh"')[1])
    assert "#include <" not in code  # NVRTC has no host standard headers


def test_kernel_dir_is_the_checkout() -> None:
    assert (loader.kernel_dir() / "aes_gcm.cuh").is_file()


def test_schedule_layout_matches_kernel_header() -> None:
    header = (loader.kernel_dir() / "aes_gcm.cuh").read_text()
    defines = dict(re.findall(r"#define (CCHET_\w+) (\d+)u?\b", header))
    expected = {
        "CCHET_SCHED_RK": sched.RK,
        "CCHET_SCHED_AAD": sched.AAD,
        "CCHET_SCHED_H1": sched.H1,
        "CCHET_SCHED_H2": sched.H2,
        "CCHET_SCHED_HLANES": sched.HLANES,
        "CCHET_SCHED_HSEG": sched.HSEG,
        "CCHET_SCHED_PREFIX": sched.PREFIX,
        "CCHET_SCHED_GEOM": sched.GEOM,
        "CCHET_SCHED_POW2": sched.POW2,
        "CCHET_SCHED_POW2_COUNT": sched.POW2_COUNT,
        "CCHET_SCHED_LANEPOW": sched.LANEPOW,
        "CCHET_LANES": geometry.DEFAULT_LANES,
    }
    assert {k: int(defines[k]) for k in expected} == expected


@pytest.mark.skipif(HAS_CUPY, reason="CuPy is installed here; this checks the error without it")
def test_module_without_cupy_names_the_fix() -> None:
    with pytest.raises(DeviceUnavailable, match=r"cchet\[gpu\]"):
        loader.module(0)
    with pytest.raises(DeviceUnavailable, match="CuPy"):
        loader.precompile()


def test_device_tests_collect_without_ray_or_cupy() -> None:
    code = (
        "import sys, pytest; "
        "rc = pytest.main(['--collect-only', '-q', '-p', 'no:cacheprovider', '-m', 'gpu', "
        f"{str(GPU_TESTS)!r}]); "
        "print('LOADED', [m for m in ('ray', 'cupy') if m in sys.modules], rc)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=GPU_TESTS.parents[1]
    )
    assert "LOADED [] 0" in out.stdout, out.stdout + out.stderr
    assert "tests collected" in out.stdout


def test_public_names_resolve_lazily() -> None:
    import cchet.gpu
    import cchet.platform

    for name in cchet.gpu.__all__:
        assert getattr(cchet.gpu, name) is not None
    for name in cchet.platform.__all__:
        assert getattr(cchet.platform, name) is not None
    with pytest.raises(AttributeError):
        _ = cchet.gpu.nothing_here


def test_bench_script_runs_on_the_fake_device(tmp_path: Path) -> None:
    bench = GPU_TESTS.parents[1] / "bench" / "bench_gpu.py"
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, str(bench), str(out), "--fake", "--repeats", "5"],
        capture_output=True,
        text=True,
        check=False,
        cwd=GPU_TESTS.parents[1],
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    import json

    result = json.loads(out.read_text())
    assert result["device"]["simulated"] is True
    cfg = result["channel"]["configs"]["slots_4_threads_1"]
    assert set(cfg["median_s"]) == {"pinned_h2d", "pinned_d2h", "h2d_channel", "d2h_channel", "h2d_presealed"}


def test_installed_layout_reads_package_data(tmp_path: Path) -> None:
    """In a wheel, kernels/ is cchet/kernels (pyproject force-include); the loader must read it there."""
    import shutil

    repo = GPU_TESTS.parents[1]
    site = tmp_path / "site"
    shutil.copytree(repo / "cchet", site / "cchet", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(repo / "kernels", site / "cchet" / "kernels")
    code = "from cchet.gpu import loader; print(loader.kernel_dir()); print(len(loader.source()))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
    )
    where, size = out.stdout.split()
    assert Path(where) == site / "cchet" / "kernels"
    assert int(size) == len(loader.source())
