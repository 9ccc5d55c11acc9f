"""Output capture that cannot leak: whatever a confidential call writes -- ``print``, a library logger with its own
handler and ``propagate=False``, ``os.write`` to file descriptors 1 and 2, C-level ``printf``, a subprocess --
comes back in that call's sealed diagnostics and never reaches Ray's log files. Overlapping calls in one
process (an async actor) each get exactly their own output; output written straight to the file descriptors
while calls overlap cannot be told apart, and is refused with an error naming ``max_concurrency``."""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import cchet
from tests.leak_scan import scan

pytestmark = pytest.mark.slow


def _canary(tag: str) -> str:
    return f"canary-{tag}-{os.urandom(6).hex()}"


@cchet.remote
def noisy(canaries: dict[str, str]) -> int:
    import ctypes
    import subprocess
    import sys

    print(canaries["print"])
    library = logging.getLogger("cchet.test.library")
    if not library.handlers:  # a library that set up its own handler on the real stderr at import time
        library.addHandler(logging.StreamHandler(sys.__stderr__))
        library.propagate = False
    library.warning("%s", canaries["logger"])
    os.write(1, (canaries["fd1"] + "\n").encode())
    os.write(2, (canaries["fd2"] + "\n").encode())
    ctypes.CDLL(None).printf(b"%s\n", canaries["printf"].encode())
    subprocess.run(["echo", canaries["subprocess"]], check=True)
    return 7


def _in_logs(temp_dir: Path, canary: str) -> int:
    return scan(temp_dir, canary.encode())["logs"]


def test_every_kind_of_output_comes_back_sealed(
    ray_cluster: Path, tdx_session: Any, capfd: pytest.CaptureFixture[str], caplog: Any
) -> None:
    canaries = {k: _canary(k) for k in ("print", "logger", "fd1", "fd2", "printf", "subprocess")}
    with caplog.at_level(logging.WARNING, logger="cchet.test.library"):
        assert cchet.get(noisy.remote(canaries)) == 7
    out, err = capfd.readouterr()
    for kind in ("print", "fd1", "printf", "subprocess"):
        assert canaries[kind] in out, f"{kind} output did not come back in the call's diagnostics"
    assert canaries["fd2"] in err
    assert any(canaries["logger"] in r.getMessage() for r in caplog.records), "the library's record came back"
    leaked = {kind: _in_logs(ray_cluster, c) for kind, c in canaries.items()}
    assert leaked == dict.fromkeys(canaries, 0), f"output in Ray's log files: {leaked}"


@cchet.remote(max_concurrency=4)
class Overlapping:
    async def speak(self, canary: str, first: float, then: float) -> str:
        await asyncio.sleep(first)
        print(canary + "-print")
        logging.getLogger("cchet.test.actor").warning("%s", canary + "-log")
        await asyncio.sleep(then)
        print(canary + "-late")
        return canary

    async def write_fd(self, canary: str, seconds: float) -> str:
        await asyncio.sleep(seconds / 2)
        os.write(1, (canary + "\n").encode())
        await asyncio.sleep(seconds / 2)
        return canary

    async def quiet(self) -> int:
        return 1


def test_overlapping_async_calls_each_get_their_own_output(
    ray_cluster: Path, tdx_session: Any, capfd: pytest.CaptureFixture[str], caplog: Any
) -> None:
    actor = Overlapping.remote()
    a, b = _canary("a"), _canary("b")
    ref_a = actor.speak.remote(a, 0.0, 0.4)  # a speaks first and finishes first
    ref_b = actor.speak.remote(b, 0.2, 0.4)  # b starts with a, speaks while a runs, and finishes after it
    with caplog.at_level(logging.WARNING, logger="cchet.test.actor"):
        assert cchet.get(ref_b) == b
        out_b, _ = capfd.readouterr()
        logs_b = [r.getMessage() for r in caplog.records]
        caplog.clear()
        assert cchet.get(ref_a) == a
        out_a, _ = capfd.readouterr()
        logs_a = [r.getMessage() for r in caplog.records]
    assert f"{b}-print" in out_b and f"{b}-late" in out_b and a not in out_b
    assert f"{a}-print" in out_a and f"{a}-late" in out_a and b not in out_a
    assert any(f"{b}-log" in m for m in logs_b) and not any(a in m for m in logs_b)
    assert any(f"{a}-log" in m for m in logs_a) and not any(b in m for m in logs_a)
    assert Counter(_in_logs(ray_cluster, c) for c in (a, b)) == Counter({0: 2}), "output in Ray's log files"


def test_descriptor_output_while_calls_overlap_is_refused_naming_max_concurrency(
    ray_cluster: Path, tdx_session: Any
) -> None:
    actor = Overlapping.remote()
    a, b = _canary("fd-a"), _canary("fd-b")
    refs = [actor.write_fd.remote(a, 1.0), actor.write_fd.remote(b, 1.0)]
    for ref in refs:
        with pytest.raises(cchet.CchetError, match="max_concurrency"):
            cchet.get(ref)
    assert cchet.get(actor.quiet.remote()) == 1, "the actor goes on serving"
    assert _in_logs(ray_cluster, a) == 0 and _in_logs(ray_cluster, b) == 0, "output in Ray's log files"
