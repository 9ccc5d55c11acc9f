"""Shared test fixtures: where the real-world evidence and vectors live, and how to skip without them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def fixtures_root() -> Path | None:
    """``$CCHET_FIXTURES`` or ``../shared/fixtures`` beside the checkout; None when absent."""
    root = Path(os.environ.get("CCHET_FIXTURES") or REPO.parent / "shared" / "fixtures")
    return root if root.is_dir() else None


def fixture_path(relative: str) -> Path:
    """The path of one fixture file; skips the calling test, saying why, when it is not there."""
    root = fixtures_root()
    if root is None:
        pytest.skip(
            "real-world fixtures not found: set CCHET_FIXTURES to shared/fixtures (see its MANIFEST.md)"
        )
    path = root / relative
    if not path.exists():
        pytest.skip(f"fixture {relative} not found under {root}")
    return path


@pytest.fixture
def fixtures() -> Path:
    """The fixtures folder; skips with the reason when it is absent."""
    root = fixtures_root()
    if root is None:
        pytest.skip(
            "real-world fixtures not found: set CCHET_FIXTURES to shared/fixtures (see its MANIFEST.md)"
        )
    return root


_REPORT: list[str] = []


@pytest.fixture
def report() -> list[str]:
    """Lines appended here are printed in pytest's closing summary (case counts, skip reasons)."""
    return _REPORT


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _REPORT:
        terminalreporter.section("cchet test report")
        for line in _REPORT:
            terminalreporter.write_line(line)
