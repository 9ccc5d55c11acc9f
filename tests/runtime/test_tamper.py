"""Attacks through Ray's object store: flipped bytes, swapped arguments, replayed results. Each is refused
with IntegrityError, and the task body never runs on bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cchet
from cchet import IntegrityError
from cchet.runtime.frames import RESULT_HEAD, read_result_frame
from cchet.runtime.sealedref import SealedRef


@cchet.remote
def record(marker: str, a: Any, b: Any = None) -> Any:
    Path(marker).write_text("ran")
    return (a, b)


def _flipped(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 1
    return bytes(out)


def _tampered_put(ref: SealedRef) -> SealedRef:
    import ray

    sealed = ray.get(ref.ref)  # sealed objects are raw bytes: no pickle on this path
    return SealedRef(ray.put(_flipped(sealed, len(sealed) // 2)), ref.descriptor)


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "marker"


def _refused(ref: SealedRef, marker: Path) -> None:
    with pytest.raises(IntegrityError):
        cchet.get(ref)
    assert not marker.exists(), "the task body ran on bad input"


def test_a_flipped_byte_in_the_object_store(tdx_session: Any, marker: Path) -> None:
    good = cchet.put({"secret": 1})
    _refused(record.remote(str(marker), _tampered_put(good)), marker)
    assert cchet.get(record.remote(str(marker), good))[0] == {"secret": 1}
    assert marker.exists()


def test_a_flipped_byte_in_a_result(tdx_session: Any, marker: Path) -> None:
    import ray

    ref = record.remote(str(marker), np.ones(1 << 16, dtype=np.uint8))
    frame = ray.get(ref.ref)
    assert read_result_frame(frame).value is not None
    at = RESULT_HEAD + (len(frame) - RESULT_HEAD) // 2  # inside the sealed result, after the frame's head
    with pytest.raises(IntegrityError):
        cchet.get(SealedRef(ray.put(_flipped(frame, at)), ref.descriptor))


def test_swapped_sealed_arguments(tdx_session: Any, marker: Path) -> None:
    a, b = cchet.put("a"), cchet.put("b")
    swapped_a, swapped_b = SealedRef(b.ref, a.descriptor), SealedRef(a.ref, b.descriptor)
    _refused(record.remote(str(marker), swapped_a, swapped_b), marker)


def test_a_result_replayed_from_another_call(tdx_session: Any, marker: Path) -> None:
    first = record.remote(str(marker), "first")
    second = record.remote(str(marker), "second")
    assert cchet.get(first)[0] == "first" and cchet.get(second)[0] == "second"
    replay = SealedRef(first.ref, second.descriptor)
    with pytest.raises(IntegrityError):
        cchet.get(replay)
    marker.unlink()
    _refused(record.remote(str(marker), replay), marker)
