"""The worker's checks without Ray: it opens nothing it cannot tie to its envelope, and runs nothing then."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

import cchet
from cchet import IntegrityError
from cchet.broker.client import ReleasedKeys
from cchet.runtime import worker
from cchet.runtime.contexts import Role, context
from cchet.runtime.digest import function_digest
from cchet.runtime.envelope import seal_call
from cchet.runtime.values import open_value

JOB = cchet.DataKey.generate()
SESSION = os.urandom(16)
RAN: list[Any] = []


def target(a: int, b: int = 0) -> int:
    RAN.append((a, b))
    return a + b


def other(a: int, b: int = 0) -> int:
    RAN.append(("other", a, b))
    return a - b


class FakeClient:
    def keys(self, key_ids: Any, *, function: str, data_ids: Any = ()) -> ReleasedKeys:
        return ReleasedKeys({JOB.key_id: JOB}, {}, "token", 1e12, True)


@pytest.fixture(autouse=True)
def fake_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "worker_client", FakeClient)
    RAN.clear()


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return seal_call(
        session_id=SESSION,
        function_digest=function_digest(fn),
        job_key=JOB,
        output_key=JOB,
        args=args,
        kwargs=kwargs,
    )


def _outcome(sealed: Any, fn: Any, result: Any) -> tuple[Any, Any]:
    digest = function_digest(fn)
    parts, diag = result
    outcome = open_value(JOB, diag, context(Role.DIAG, SESSION, digest, sealed.call_id))
    value = None if parts is None else open_value(JOB, parts, context(Role.RET, SESSION, digest, sealed.call_id, 0))
    return value, outcome


def test_a_call_runs_and_its_result_is_sealed() -> None:
    sealed = _call(target, 2, b=3)
    result = worker.run_call(target, sealed.meta, sealed.envelope, tuple(sealed.payloads))
    value, outcome = _outcome(sealed, target, result)
    assert value == 5 and outcome.error is None and RAN == [(2, 3)]


def test_another_functions_envelope_runs_nothing() -> None:
    sealed = _call(target, 2, b=3)
    result = worker.run_call(other, sealed.meta, sealed.envelope, tuple(sealed.payloads))
    value, outcome = _outcome(sealed, other, result)
    assert value is None and RAN == []
    assert "IntegrityError" in outcome.traceback


def _big(fill: int) -> np.ndarray:
    return np.full(100_000, fill, dtype=np.uint8)  # large enough to travel as its own sealed argument


def test_small_arguments_ride_in_the_envelope_and_large_ones_apart() -> None:
    sealed = _call(target, 2, _big(1))
    assert len(sealed.payloads) == 1, "the int is inside the envelope, the 100 kB array is its own argument"
    _, outcome = _outcome(sealed, target, worker.run_call(target, sealed.meta, sealed.envelope, tuple(sealed.payloads)))
    assert outcome.error is None and RAN and RAN[0][0] == 2


def test_swapped_arguments_run_nothing() -> None:
    sealed = _call(target, _big(1), _big(2))
    payloads = tuple(reversed(sealed.payloads))
    value, outcome = _outcome(sealed, target, worker.run_call(target, sealed.meta, sealed.envelope, payloads))
    assert value is None and RAN == [] and "IntegrityError" in outcome.traceback


def test_an_argument_from_another_call_runs_nothing() -> None:
    first, second = _call(target, _big(1), _big(2)), _call(target, _big(1), _big(2))
    payloads = (first.payloads[0], second.payloads[1])
    value, _ = _outcome(second, target, worker.run_call(target, second.meta, second.envelope, payloads))
    assert value is None and RAN == []


def test_a_flipped_byte_in_an_argument_runs_nothing() -> None:
    sealed = _call(target, _big(1), _big(2))
    parts = [p.copy() for p in sealed.payloads[0]]
    parts[-1][-1] ^= 1
    payloads = (parts, sealed.payloads[1])
    value, outcome = _outcome(sealed, target, worker.run_call(target, sealed.meta, sealed.envelope, payloads))
    assert value is None and RAN == [] and "IntegrityError" in outcome.traceback


def test_a_dropped_argument_runs_nothing() -> None:
    sealed = _call(target, _big(1), _big(2))
    payloads = (sealed.payloads[0],)
    value, outcome = _outcome(sealed, target, worker.run_call(target, sealed.meta, sealed.envelope, payloads))
    assert value is None and RAN == [] and outcome.error is not None


def test_keys_the_broker_did_not_release_open_nothing() -> None:
    stranger = cchet.DataKey.generate()
    sealed = seal_call(
        session_id=SESSION,
        function_digest=function_digest(target),
        job_key=stranger,
        output_key=JOB,
        args=(1,),
        kwargs={},
    )
    value, outcome = _outcome(
        sealed, target, worker.run_call(target, sealed.meta, sealed.envelope, tuple(sealed.payloads))
    )
    assert value is None and RAN == [] and "IntegrityError" in outcome.traceback
    with pytest.raises(IntegrityError):
        worker._keyring(FakeClient().keys([], function="f"))(stranger.key_id)


def test_digest_ignores_location_but_not_code() -> None:
    def f(x: int) -> int:
        return x + 1

    def g(x: int) -> int:
        return x + 2

    assert function_digest(f) != function_digest(g)
    assert function_digest(f) == function_digest(f)
    with pytest.raises(TypeError, match="Python function"):
        function_digest(len)
