"""The leak scan: plant canaries everywhere a task's data goes, make Ray spill, and look for them in what Ray,
the host and the cloud can read -- raylet and GCS memory, the session directory, spill files and logs.

The same scan over the same workload as plain ``ray.remote`` must find its canary: that proves the scanner
sees what it claims to see. cchet's canaries (data, the bytes of a key released to the worker, and values the
task *code* holds: a module-level global, a closure, a default argument and a class attribute, in tasks and
actors) must not be found anywhere.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cchet
from cchet.hazmat import data_key_from_bytes
from tests.leak_scan import scan

pytestmark = pytest.mark.slow

SPILL_OBJECTS = 10
SPILL_BYTES = 10 * 1024 * 1024  # 10 x 10 MiB against an 80 MiB object store: Ray must spill


def _canary() -> bytes:
    return b"canary-" + os.urandom(12).hex().encode()


TABLE: dict[str, bytes] = {}  # a module-level lookup table the tasks read (set per run)


def code_workload(remote: Any, get: Any, canary: bytes) -> None:
    """Tasks and an actor whose *code* holds ``canary`` -- in a module global, a closure, a default argument and a
    class attribute -- made remote with ``remote`` (``cchet.remote`` or ``ray.remote``) and run with ``get``.
    Defined here, inside a function, so that they travel by value (as in a script or a notebook)."""
    TABLE["secret"] = canary
    closed_over = canary + b"-closure"

    def from_global(n: int) -> int:
        return len(TABLE["secret"]) + n

    def from_closure(n: int) -> int:
        return len(closed_over) + n

    def from_default(n: int, weights: bytes = canary + b"-default") -> int:
        return len(weights) + n

    class Model:
        weights = canary + b"-class"

        def size(self) -> int:
            return len(self.weights) + len(TABLE["secret"])

    sizes = [get(remote(f).remote(1)) for f in (from_global, from_closure, from_default)]
    model = remote(Model).remote()
    sizes.append(get(model.size.remote()))
    assert sizes == [len(canary) + 1, len(canary) + 9, len(canary) + 9, 2 * len(canary) + 6]


@pytest.fixture(scope="module")
def scans(ray_cluster: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    import ray

    session = cchet.init(simulate="tdx", audit_log=tmp_path_factory.mktemp("leak") / "audit.jsonl")
    try:
        data_canary, plain_canary, code_canary, plain_code_canary = _canary(), _canary(), _canary(), _canary()
        key_canary = os.urandom(32)
        key = data_key_from_bytes(key_canary, os.urandom(16))
        session.broker.add_key(key)

        @cchet.remote(keys=[key])
        def confidential(x: bytes, blob: np.ndarray, fail: bool) -> bytes:
            print(x.decode())
            logging.getLogger("leaky").warning("%s", x.decode())
            if fail:
                raise ValueError(x.decode())
            return x + bytes(blob[:8])

        @ray.remote
        def plain(x: bytes, blob: np.ndarray, fail: bool) -> bytes:
            print(x.decode())
            logging.getLogger("leaky").warning("%s", x.decode())
            if fail:
                raise ValueError(x.decode())
            return x + bytes(blob[:8])

        def blob(c: bytes) -> np.ndarray:
            return np.frombuffer(c * (SPILL_BYTES // len(c)), dtype=np.uint8).copy()

        assert cchet.get(confidential.remote(data_canary, blob(data_canary), False)).startswith(data_canary)
        with pytest.raises(ValueError, match="canary"):
            cchet.get(confidential.remote(data_canary, blob(data_canary), True))
        held = [cchet.put(blob(data_canary)) for _ in range(SPILL_OBJECTS)]
        assert ray.get(plain.remote(plain_canary, blob(plain_canary), False)).startswith(plain_canary)
        with pytest.raises(ValueError, match="canary"):
            ray.get(plain.remote(plain_canary, blob(plain_canary), True))
        held_plain = [ray.put(blob(plain_canary)) for _ in range(SPILL_OBJECTS)]
        code_workload(cchet.remote, cchet.get, code_canary)
        code_workload(ray.remote, ray.get, plain_code_canary)
        results = {
            "cchet data": scan(ray_cluster, data_canary),
            "cchet key": scan(ray_cluster, key_canary),
            "plain data": scan(ray_cluster, plain_canary),
            "cchet code": scan(ray_cluster, code_canary),
            "plain code": scan(ray_cluster, plain_code_canary),
        }
        del held, held_plain
        yield results
    finally:
        cchet.shutdown()


def test_the_scanner_finds_plain_rays_canary(scans: dict[str, Counter[str]], report: list[str]) -> None:
    plain = scans["plain data"]
    report.append(f"leak scan, plain Ray canary found in: {dict(plain)}")
    assert plain["logs"] > 0, "plain Ray's printed canary is in the worker logs"
    assert plain["spill"] > 0 or plain["raylet memory"] > 0, "plain Ray's objects hold the canary"


def test_cchet_leaks_no_data_and_no_key(scans: dict[str, Counter[str]], report: list[str]) -> None:
    report.append(f"leak scan, cchet data canary found in: {dict(scans['cchet data']) or 'nothing'}")
    report.append(f"leak scan, cchet key canary found in: {dict(scans['cchet key']) or 'nothing'}")
    assert scans["cchet data"] == Counter(), scans["cchet data"]
    assert scans["cchet key"] == Counter(), scans["cchet key"]


def test_the_scanner_finds_plain_rays_code_in_the_gcs(scans: dict[str, Counter[str]], report: list[str]) -> None:
    plain = scans["plain code"]
    report.append(f"leak scan, plain Ray code canary found in: {dict(plain)}")
    assert plain["gcs_server memory"] > 0, "Ray exports plain remote code, with what it captures, through the GCS"


def test_cchet_task_code_travels_sealed(scans: dict[str, Counter[str]], report: list[str]) -> None:
    report.append(f"leak scan, cchet code canary found in: {dict(scans['cchet code']) or 'nothing'}")
    assert scans["cchet code"] == Counter(), scans["cchet code"]
