"""Confidential tasks feel like Ray: every data kind round-trips, refs chain, output and errors come back."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import cchet
from cchet import PlacementError


@cchet.remote(tee="tdx")
def identity(x: Any) -> Any:
    return x


@cchet.remote
def add(a: Any, b: Any = 0) -> Any:
    return a + b


@cchet.remote
def talk(x: int) -> int:
    print(f"stdout line {x}")
    import sys

    print(f"stderr line {x}", file=sys.stderr)
    logging.getLogger("cchet.test.user").warning("log record %d", x)
    return x * 2


@cchet.remote
def explode(x: int) -> int:
    raise KeyError(f"missing {x}")


@dataclass
class Point:
    x: float
    y: float


@pytest.mark.parametrize(
    "value",
    [
        b"raw bytes \x00\xff",
        bytearray(b"mutable"),
        "text",
        12345678901234567890,
        {"nested": [1, 2.5, None, ("t",)]},
        Point(1.0, 2.0),
        np.arange(10, dtype=np.int16),
        np.zeros((3, 4), dtype=np.float32),
    ],
    ids=["bytes", "bytearray", "str", "int", "dict", "dataclass", "small-array", "2d-array"],
)
def test_round_trip(tdx_session: Any, value: Any) -> None:
    out = cchet.get(identity.remote(value))
    if isinstance(value, np.ndarray):
        assert out.dtype == value.dtype and np.array_equal(out, value)
    else:
        assert out == value


def test_large_array_round_trip(tdx_session: Any) -> None:
    data = np.random.default_rng(1).standard_normal(4_000_000)  # 32 MB
    out = cchet.get(identity.remote(data))
    assert np.array_equal(out, data) and out.flags.writeable


def test_refs_chain_without_the_driver_opening_them(tdx_session: Any) -> None:
    a = add.remote(1, 2)
    b = add.remote(a, 10)
    c = add.remote(a, b=b)
    assert cchet.get([a, b, c]) == [3, 13, 16]


def test_put_feeds_tasks(tdx_session: Any) -> None:
    ref = cchet.put(np.ones(1000))
    assert cchet.get(add.remote(ref, 1.0)).sum() == 2000.0
    assert cchet.get(ref).sum() == 1000.0


def test_output_and_logs_come_back(tdx_session: Any, capsys: pytest.CaptureFixture[str], caplog: Any) -> None:
    with caplog.at_level(logging.WARNING, logger="cchet.test.user"):
        assert cchet.get(talk.remote(21)) == 42
    captured = capsys.readouterr()
    assert "stdout line 21" in captured.out and "stderr line 21" in captured.err
    assert any("log record 21" in r.getMessage() for r in caplog.records)


def test_errors_are_re_raised_with_the_remote_traceback(tdx_session: Any) -> None:
    with pytest.raises(KeyError, match="missing 7") as info:
        cchet.get(explode.remote(7))
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "remote traceback" in notes and "explode" in notes


def test_a_failed_producer_fails_its_consumer(tdx_session: Any) -> None:
    with pytest.raises(KeyError, match="missing 3") as info:
        cchet.get(add.remote(explode.remote(3), 1))
    assert "produced argument 0" in "\n".join(info.value.__notes__)


def test_direct_call_points_to_remote() -> None:
    with pytest.raises(TypeError, match=r"add\.remote\(\.\.\.\)"):
        add(1, 2)


def test_ray_get_points_to_cchet_get(tdx_session: Any) -> None:
    import ray

    ref = add.remote(1, 1)
    with pytest.raises(TypeError, match=r"cchet\.get"):
        ray.get(ref)
    with pytest.raises(TypeError, match=r"cchet\.get"):
        ray.get([ref])
    assert cchet.get(ref) == 2
    ready, _ = ray.wait([ref.ref], timeout=30)
    assert ready == [ref.ref]


def test_options_return_a_new_handle(tdx_session: Any) -> None:
    heavier = add.options(num_cpus=2, tee="tdx")
    assert heavier is not add and heavier._options.ray["num_cpus"] == 2
    assert add._options.ray == {}
    assert cchet.get(heavier.remote(2, 3)) == 5


def test_options_are_validated_when_applied() -> None:
    with pytest.raises(TypeError, match=r"unknown option 'num_cpu'.*num_cpus"):
        cchet.remote(num_cpu=1)
    with pytest.raises(ValueError, match="tee must be one of"):
        cchet.remote(tee="xen")
    with pytest.raises(TypeError, match="cchet places tasks"):
        cchet.remote(scheduling_strategy="SPREAD")
    with pytest.raises(ValueError, match="gpu='cc'"):
        cchet.remote(num_gpus=1)
    with pytest.raises(TypeError, match="unknown option"):
        add.options(colour="blue")


def test_no_qualifying_node_fails_at_once(tdx_session: Any) -> None:
    import time

    start = time.perf_counter()
    with pytest.raises(PlacementError, match=r"tee='snp'.*tdx.*SIMULATED") as info:
        add.options(tee="snp").remote(1, 1)
    assert time.perf_counter() - start < 2
    assert "accepted" in str(info.value)
    with pytest.raises(PlacementError, match="gpu='cc'"):
        add.options(gpu="cc", num_gpus=1).remote(1, 1)


def test_a_function_policy_is_enforced_at_key_release(tdx_session: Any) -> None:
    strict = cchet.Policy(name="fn-strict", allow_simulation=True, mrtd=("00" * 48,))
    with pytest.raises(cchet.KeyReleaseDenied, match="mrtd") as info:
        cchet.get(add.options(policy=strict).remote(1, 2))
    assert any("policy.mrtd" in r for r in info.value.reasons)
    lenient = cchet.Policy(name="fn-lenient", allow_simulation=True, measurements="any")
    assert cchet.get(add.options(policy=lenient).remote(1, 2)) == 3
