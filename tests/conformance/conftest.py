"""The simulated authority the conformance tests sign their own cases with (one per session)."""

from __future__ import annotations

import pytest

from cchet.attest.simulate import SimulatedAuthority


@pytest.fixture(scope="session")
def authority(tmp_path_factory: pytest.TempPathFactory) -> SimulatedAuthority:
    return SimulatedAuthority.open(tmp_path_factory.mktemp("sim") / "authority")
