"""Device tests: they need an NVIDIA GPU and CuPy, are marked ``gpu`` and skip, saying why, otherwise.

Collected without importing Ray (nothing here or in cchet.gpu imports it) or CuPy (looked up, not imported,
until a test runs).
"""

from __future__ import annotations

import importlib
import importlib.util
from functools import cache
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent


@cache
def gpu_missing() -> str | None:
    """Why the device tests cannot run here, or None when they can."""
    if importlib.util.find_spec("cupy") is None:
        return "CuPy is not installed: pip install 'cchet[gpu]' (cupy-cuda13x) on a machine with an NVIDIA GPU"
    try:
        cp = importlib.import_module("cupy")
        count = int(cp.cuda.runtime.getDeviceCount())
    except Exception as e:
        return f"no usable CUDA GPU: {e}"
    return None if count else "no CUDA GPU visible"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.gpu)


@pytest.fixture(autouse=True)
def _needs_gpu() -> None:
    reason = gpu_missing()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
def cp() -> Any:
    return importlib.import_module("cupy")
