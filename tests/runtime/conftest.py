"""One real local Ray for all runtime tests (started once; ~8 s), with cchet sessions on top of it.

Ray writes its token under ``$HOME/.ray`` and the simulator its keys under ``$HOME/.local/state``: both go to
a temporary home. Ray's temp dir is a short path (Unix sockets allow 107 bytes). The object store is small
so that the leak test can make Ray spill.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

OBJECT_STORE_BYTES = 80 * 1024 * 1024


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    ray = pytest.importorskip("ray")
    home = tmp_path_factory.mktemp("home")
    temp_dir = Path(tempfile.mkdtemp(prefix="cr", dir="/tmp"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.delenv("CCHET_SIM_KEY_DIR", raising=False)
        ray.init(
            address="local",
            num_cpus=2,
            num_gpus=1,
            object_store_memory=OBJECT_STORE_BYTES,
            include_dashboard=False,
            _temp_dir=str(temp_dir),
        )
        try:
            yield temp_dir
        finally:
            ray.shutdown()
            shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def session_factory(ray_cluster: Path, tmp_path: Path) -> Iterator[Any]:
    import cchet

    def start(**kw: Any) -> Any:
        kw.setdefault("simulate", "tdx")
        kw.setdefault("audit_log", tmp_path / "audit.jsonl")
        return cchet.init(**kw)

    yield start
    cchet.shutdown()


@pytest.fixture(scope="module")
def tdx_session(ray_cluster: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    import cchet

    session = cchet.init(simulate="tdx", audit_log=tmp_path_factory.mktemp("audit") / "audit.jsonl")
    yield session
    cchet.shutdown()


def marker_dir() -> Path:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"cchet-markers-{os.getuid()}"
    path.mkdir(exist_ok=True)
    return path
