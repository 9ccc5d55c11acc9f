"""The one place cchet touches Ray internals: reading objects as data and metadata, never deserializing them.

These tests fail loudly when a Ray upgrade changes what :mod:`cchet.runtime.raystore` relies on -- the release,
the core worker's ``get_objects`` answer, the metadata of raw bytes, the numbering of Ray's error types -- so
that whoever upgrades Ray re-checks the module before anything trusts it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from cchet import IntegrityError, RayFailure
from cchet.runtime import raystore
from cchet.runtime.raystore import FAILURES, RAW, TESTED_RAY, raw_bytes, read_raw
from tests.runtime.spill_rewrite import marker_payload

pytestmark = pytest.mark.ray


def test_the_installed_ray_is_the_release_this_module_was_checked_against() -> None:
    import ray

    installed = ".".join(ray.__version__.split(".")[:2])
    assert installed == TESTED_RAY, (
        f"Ray {ray.__version__} is installed, cchet/runtime/raystore.py was checked against Ray {TESTED_RAY}: check "
        "that CoreWorker.get_objects still returns (data, metadata, ...) without deserializing, that bytes are "
        "stored with metadata RAW and that ErrorType keeps its numbers (this file's tests), then update TESTED_RAY"
    )


def test_error_types_keep_their_numbers() -> None:
    from ray.core.generated.common_pb2 import ErrorType

    for code, name in FAILURES.items():
        assert ErrorType.Value(name) == code, f"Ray renumbered {name}"
    assert ErrorType.Value("TASK_EXECUTION_EXCEPTION") not in FAILURES, "a task exception is never a plain failure"


def test_bytes_come_back_raw_and_without_a_copy(ray_cluster: Path) -> None:
    import ray

    data = os.urandom(1 << 20)
    (obj,) = read_raw([ray.put(data)])
    assert obj.metadata == RAW and obj.data.readonly and obj.data.nbytes == len(data)
    assert raw_bytes(obj, "it") == data


def test_a_python_object_is_refused_unread(ray_cluster: Path, tmp_path: Path) -> None:
    import ray

    marker = tmp_path / "marker"
    (obj,) = read_raw([ray.put(marker_payload(marker))])
    assert obj.metadata != RAW
    with pytest.raises(IntegrityError, match="not sealed cchet data"):
        raw_bytes(obj, "the planted object")
    assert not marker.exists(), "reading it ran its pickle"


def test_rays_failures_become_cchet_errors_without_reading_them(ray_cluster: Path, tmp_path: Path) -> None:
    import ray

    marker = tmp_path / "marker"

    @ray.remote(max_retries=0)
    def dies() -> None:
        os._exit(1)

    @ray.remote(max_retries=0)
    def raises() -> None:
        raise ValueError(marker_payload(marker))

    died, raised = read_raw([dies.remote(), raises.remote()])
    with pytest.raises(RayFailure, match="WORKER_DIED") as info:
        raw_bytes(died, "the task")
    assert info.value.error_type == "WORKER_DIED"
    with pytest.raises(IntegrityError, match="not sealed cchet data"):
        raw_bytes(raised, "the task")  # a task exception is a pickle: confidential tasks never return one
    assert not marker.exists()


def test_a_timeout_is_a_timeout(ray_cluster: Path) -> None:
    import ray

    @ray.remote
    def slow() -> bytes:
        time.sleep(3)
        return b"late"

    start = time.perf_counter()
    with pytest.raises(TimeoutError):
        read_raw([slow.remote()], timeout=0.2)
    assert time.perf_counter() - start < 2.5


def test_a_core_worker_that_answers_otherwise_is_refused(monkeypatch: pytest.MonkeyPatch, ray_cluster: Path) -> None:
    import ray

    class Changed:
        def get_objects(self, refs: list[object], timeout_ms: int) -> list[object]:
            return [object() for _ in refs]

    monkeypatch.setattr(raystore, "check_ray", Changed)
    with pytest.raises(raystore.CchetError, match="shape"):
        read_raw([ray.put(b"x")])
