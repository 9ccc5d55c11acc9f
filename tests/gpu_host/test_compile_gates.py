"""CI compile gates for every ``.cu`` in kernels/: nvcc with warnings as errors, and NVRTC with the
loader's exact options and an empty log. Each gate skips, saying why, when its compiler is absent."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from cchet.gpu import loader

KERNELS = sorted(loader.kernel_dir().glob("*.cu"))
NVCC_FLAGS = (
    "-arch=sm_90",
    "-std=c++17",
    "-Werror",
    "all-warnings",
    "-Xptxas",
    "-Werror",
    "-Xcompiler",
    "-Wall,-Wextra,-Werror",
)


def test_there_are_kernels() -> None:
    assert [p.name for p in KERNELS] == ["aes_gcm.cu"]


@pytest.mark.parametrize("cu", KERNELS, ids=lambda p: p.name)
def test_nvcc_sm90_warnings_as_errors(cu: Path, tmp_path: Path) -> None:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not on PATH: install the CUDA 13.0 toolkit to run this compile gate")
    run = subprocess.run(
        [nvcc, *NVCC_FLAGS, "-c", str(cu), "-o", str(tmp_path / "k.o")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr + run.stdout
    assert run.stderr == "" and run.stdout == ""


def _nvrtc() -> object:
    from cchet.gpu import nvrtc

    if nvrtc.library_dir() is None:
        pytest.skip("NVRTC not found: pip install 'nvidia-cuda-nvrtc==13.0.*' (in cchet[dev])")
    return nvrtc


@pytest.mark.parametrize("arch", ["compute_90", "sm_90"])
@pytest.mark.parametrize("cu", KERNELS, ids=lambda p: p.name)
def test_nvrtc_with_loader_options_empty_log(cu: Path, arch: str) -> None:
    nvrtc = _nvrtc()
    result = nvrtc.compile_to_ptx(  # type: ignore[attr-defined]
        loader.source(cu.name), cu.name, (*loader.NVRTC_OPTIONS, f"--gpu-architecture={arch}")
    )
    assert result.ok, result.log
    assert result.log == ""
    for name in loader.KERNEL_NAMES:
        assert f".entry {name}(" in result.ptx


@pytest.mark.parametrize(
    "defines", [{"CCHET_TABLE_LAYOUT_CONFLICT": 1}, {"CCHET_MIN_BLOCKS_PER_SM": 3}], ids=lambda d: next(iter(d))
)
def test_nvrtc_compile_time_variants_empty_log(defines: dict[str, int]) -> None:
    """The variants loader.module(defines=...) builds (the timing test's leaky positive control, the
    occupancy knob) pass the same gate."""
    nvrtc = _nvrtc()
    options = (*loader.NVRTC_OPTIONS, *loader.define_options(defines), "--gpu-architecture=sm_90")
    result = nvrtc.compile_to_ptx(loader.source(), "aes_gcm.cu", options)  # type: ignore[attr-defined]
    assert result.ok, result.log
    assert result.log == ""


def test_nvrtc_messages_name_the_real_file_and_line() -> None:
    nvrtc = _nvrtc()
    code = loader.source()
    lines = (loader.kernel_dir() / "aes_gcm.cuh").read_text().splitlines()
    target = next(i for i, line in enumerate(lines, start=1) if "struct u128 {" in line)
    broken = code.replace("struct u128 {", "struct u128 { this_is_not_cuda;", 1)
    result = nvrtc.compile_to_ptx(broken, "aes_gcm.cu", loader.NVRTC_OPTIONS)  # type: ignore[attr-defined]
    assert not result.ok
    assert f"aes_gcm.cuh({target})" in result.log


def test_nvrtc_version_matches_the_toolkit() -> None:
    nvrtc = _nvrtc()
    assert nvrtc.version()[0] == 13  # type: ignore[attr-defined]
