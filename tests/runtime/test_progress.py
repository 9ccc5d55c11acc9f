"""Progress bars on long ``cchet.get``/``cchet.put`` transfers: off in non-interactive runs, on past the
threshold when enabled, counting every sealed byte once."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import cchet
from cchet.runtime import progress
from cchet.runtime.frames import read_value_frame
from cchet.runtime.values import open_value, seal_value

KEY = cchet.DataKey.generate()
MIB = 1 << 20


@pytest.fixture
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "THRESHOLD_BYTES", MIB)


def test_enabled_follows_the_environment_and_is_off_when_not_interactive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(progress.ENV, raising=False)
    assert not progress.enabled()  # pytest: stderr is not a terminal, no Jupyter kernel
    for value, expected in (("1", True), ("yes", True), ("0", False), ("off", False)):
        monkeypatch.setenv(progress.ENV, value)
        assert progress.enabled() is expected


def test_no_bar_outside_a_transfer_or_below_the_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(progress.ENV, "1")
    seal_value(KEY, np.zeros(2 * MIB, dtype=np.uint8), b"ctx")  # no transfer: nothing to report to
    with progress.transfer("cchet.put") as t:
        seal_value(KEY, np.zeros(MIB, dtype=np.uint8), b"ctx")
    assert t.bar is None and t.done == t.total > MIB - 1


@pytest.mark.usefixtures("small_threshold")
def test_a_bar_counts_every_sealed_byte(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(progress.ENV, "1")
    value = np.arange(3 * MIB, dtype=np.uint8)
    with progress.transfer("cchet.put") as put:
        frame = seal_value(KEY, value, b"ctx")
    sealed = sum(len(p) for p in read_value_frame(frame))
    assert put.bar is not None and put.bar.n == put.bar.total == sealed
    with progress.transfer("cchet.get") as get:
        np.testing.assert_array_equal(open_value(KEY, frame, b"ctx"), value)
    assert get.bar is not None and get.bar.n == put.bar.total
    err = capsys.readouterr().err
    assert "cchet.put: 100%" in err and "cchet.get: 100%" in err


@pytest.mark.usefixtures("small_threshold")
def test_no_bar_by_default_in_a_script(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(progress.ENV, raising=False)
    with progress.transfer("cchet.put") as t:
        seal_value(KEY, np.zeros(2 * MIB, dtype=np.uint8), b"ctx")
    assert t.bar is None and "cchet.put" not in capsys.readouterr().err


@pytest.mark.ray
@pytest.mark.usefixtures("small_threshold")
def test_cchet_get_and_put_show_bars(
    tdx_session: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(progress.ENV, "1")
    value = np.arange(2 * MIB, dtype=np.uint8)
    np.testing.assert_array_equal(cchet.get(cchet.put(value)), value)
    err = capsys.readouterr().err
    assert "cchet.put: 100%" in err and "cchet.get: 100%" in err
