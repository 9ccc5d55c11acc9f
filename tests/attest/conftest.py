"""A simulated authority shared by the attestation tests (one key directory per test session)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from cchet.attest.simulate import SimulatedAuthority

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="session")
def authority(tmp_path_factory: pytest.TempPathFactory) -> SimulatedAuthority:
    return SimulatedAuthority.open(tmp_path_factory.mktemp("sim") / "authority")


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"
