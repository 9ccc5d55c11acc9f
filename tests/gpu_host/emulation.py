"""Builds the CPU emulation of the CUDA kernels (the unchanged ``.cu`` sources against ``emulator/cuda_shim.hpp``)
with g++, for the tests that run kernel source without a GPU."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from cchet.gpu import loader

EMULATOR = Path(__file__).parent / "emulator"


def build(source: str, out: Path, *extra: str) -> Path:
    """Compile ``emulator/<source>`` into ``out`` (warnings are errors); skips the test without g++."""
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("g++ not on PATH: it builds the CPU emulation of the kernels")
    flags = ["-std=c++20", "-O1", "-pthread", "-Wall", "-Werror", "-Wno-unknown-pragmas", *extra]
    subprocess.run(
        [gxx, *flags, f"-I{loader.kernel_dir()}", "-o", str(out), str(EMULATOR / source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out
