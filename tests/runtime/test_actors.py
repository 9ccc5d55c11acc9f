"""Confidential actors: sealed constructor and method calls, ordering enforced, async actors."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

import cchet
from cchet import IntegrityError


@cchet.remote(tee="tdx")
class Counter:
    def __init__(self, start: int, *, step: int = 1) -> None:
        self.value = start
        self.step = step
        print(f"counter starts at {start}")

    def incr(self) -> int:
        self.value += self.step
        return self.value

    def add_array(self, arr: np.ndarray) -> float:
        self.value += int(arr.sum())
        return float(self.value)

    def fail(self) -> None:
        raise RuntimeError("actor method failed")


@cchet.remote
class Broken:
    def __init__(self) -> None:
        raise ValueError("bad constructor")

    def ping(self) -> str:
        return "pong"


@cchet.remote(max_concurrency=4)
class AsyncEcho:
    async def echo(self, x: Any, delay: float = 0.0) -> Any:
        await asyncio.sleep(delay)
        return x

    def sync_too(self, x: int) -> int:
        return x + 1


def test_actor_state_and_sealed_calls(tdx_session: Any, capsys: pytest.CaptureFixture[str]) -> None:
    counter = Counter.remote(10, step=5)
    assert cchet.get(counter.ready()) is None
    assert "counter starts at 10" in capsys.readouterr().out
    refs = [counter.incr.remote() for _ in range(5)]
    assert cchet.get(refs) == [15, 20, 25, 30, 35]
    assert cchet.get(counter.add_array.remote(np.ones(100, dtype=np.int64))) == 135.0
    with pytest.raises(RuntimeError, match="actor method failed"):
        cchet.get(counter.fail.remote())
    assert cchet.get(counter.incr.remote()) == 140, "a failed call leaves the actor usable"


def test_refs_flow_between_actors_and_tasks(tdx_session: Any) -> None:
    @cchet.remote
    def double(x: int) -> int:
        return 2 * x

    counter = Counter.remote(1)
    assert cchet.get(double.remote(counter.incr.remote())) == 4


def test_a_failed_constructor_stays_sealed_and_answers_every_call(tdx_session: Any) -> None:
    broken = Broken.remote()
    with pytest.raises(ValueError, match="bad constructor"):
        cchet.get(broken.ready())
    with pytest.raises(ValueError, match="bad constructor"):
        cchet.get(broken.ping.remote())


def test_async_actor(tdx_session: Any) -> None:
    echo = AsyncEcho.remote()
    slow = echo.echo.remote("slow", 0.5)
    fast = echo.echo.remote("fast")
    assert cchet.get(fast) == "fast" and cchet.get(slow) == "slow"
    assert cchet.get(echo.sync_too.remote(1)) == 2


def test_replayed_or_misdirected_method_calls_run_nothing(tdx_session: Any) -> None:
    """An old sequence number (a replayed call) or a call meant for another actor opens nothing."""
    counter = Counter.remote(0)
    assert cchet.get(counter.incr.remote()) == 1
    seq = counter._seq
    counter._seq = iter([0])  # the next call carries sequence number 0 again: a replay
    with pytest.raises(IntegrityError):
        cchet.get(counter.incr.remote())
    counter._seq = seq
    assert cchet.get(counter.incr.remote()) == 2, "the refused replay changed nothing"
    other = Counter.remote(100)
    other._handle = counter._handle  # other's calls delivered to counter
    with pytest.raises(IntegrityError):
        cchet.get(other.incr.remote())
    counter._seq = iter([5])  # a gap: calls dropped on the way
    with pytest.raises(IntegrityError):
        cchet.get(counter.incr.remote())


def test_actor_misuse_errors() -> None:
    with pytest.raises(TypeError, match=r"Counter\.remote\(\.\.\.\)"):
        Counter(1)
    with pytest.raises(TypeError, match="unknown option 'max_calls'"):
        Counter.options(max_calls=3)
    with pytest.raises(TypeError, match="cannot be set"):
        cchet.remote(scheduling_strategy="SPREAD")
