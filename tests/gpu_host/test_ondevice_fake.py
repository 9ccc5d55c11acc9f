"""cchet.gpu.ondevice on the SIMULATED fake device: whole sealed streams in "device" memory."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import pytest

from cchet import seal, unseal
from cchet.errors import IntegrityError, SealedFormatError
from cchet.gpu import ondevice
from cchet.gpu import schedule as sched
from cchet.gpu.device import KernelRefused
from cchet.gpu.fake_device import FakeDevice
from cchet.gpu.schedule import StreamSchedule
from cchet.hazmat.keys import DataKey

KEY = DataKey.generate()


@pytest.fixture
def dev() -> FakeDevice:
    return FakeDevice()


def put(dev: FakeDevice, data: bytes) -> object:
    buf = dev.empty(len(data))
    buf[:] = np.frombuffer(data, dtype=np.uint8)
    return buf


@pytest.mark.parametrize("n", [0, 5, 3 * 4096 + 1])
def test_seal_on_device_opens_on_cpu_and_back(dev: FakeDevice, n: int) -> None:
    data = os.urandom(n)
    sealed = ondevice.seal(KEY, put(dev, data), context=b"c", chunk_size=4096, device=dev)
    assert unseal(KEY, np.asarray(sealed).tobytes(), context=b"c") == data
    cpu_sealed = seal(KEY, data, context=b"c", chunk_size=4096)
    assert np.asarray(ondevice.unseal(KEY, put(dev, cpu_sealed), context=b"c", device=dev)).tobytes() == data


def test_unseal_on_device_tamper_zeroes(dev: FakeDevice, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(2 * 4096)
    blob = bytearray(seal(KEY, data, chunk_size=4096))
    blob[-1] ^= 1
    outputs: list[object] = []
    empty = dev.empty

    def recording_empty(n: int) -> object:
        buf = empty(n)
        outputs.append(buf)
        return buf

    monkeypatch.setattr(dev, "empty", recording_empty)
    src = put(dev, bytes(blob))
    with pytest.raises(IntegrityError):
        ondevice.unseal(KEY, src, device=dev)
    assert not np.asarray(outputs[-1]).any()
    with pytest.raises(SealedFormatError):
        ondevice.unseal(KEY, put(dev, bytes(blob[:40])), device=dev)


def test_seal_and_unseal_wait_for_the_callers_stream(dev: FakeDevice) -> None:
    """Input still being produced on the caller's current stream is finished before it is read."""
    data = os.urandom(3 * 4096 + 11)

    def late(payload: bytes) -> object:
        buf = dev.empty(len(payload))
        buf[:] = 0

        def produce() -> None:
            time.sleep(0.05)
            buf[:] = np.frombuffer(payload, dtype=np.uint8)

        dev.current_stream().submit(produce)
        return buf

    sealed = ondevice.seal(KEY, late(data), context=b"c", chunk_size=4096, device=dev)
    assert unseal(KEY, np.asarray(sealed).tobytes(), context=b"c") == data
    blob = seal(KEY, data, context=b"c", chunk_size=4096)
    assert np.asarray(ondevice.unseal(KEY, late(blob), context=b"c", device=dev)).tobytes() == data


def test_seal_raises_when_the_kernel_refuses(dev: FakeDevice, monkeypatch: pytest.MonkeyPatch) -> None:
    real = StreamSchedule.for_stream

    def bad_geometry(*args: Any, **kwargs: Any) -> StreamSchedule:
        s = real(*args, **kwargs)
        words = s.words.copy()
        words[sched.GEOM] = 128  # lanes the kernel was not built for
        return StreamSchedule(words=words, geometry=s.geometry)

    monkeypatch.setattr(StreamSchedule, "for_stream", bad_geometry)
    with pytest.raises(KernelRefused):
        ondevice.seal(KEY, put(dev, os.urandom(5000)), chunk_size=4096, device=dev)
