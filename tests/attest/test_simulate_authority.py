"""The simulated key directory: created once with private modes, shared by processes, roots say SIMULATED."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

from cchet.attest.simulate import SimulatedAuthority


def test_key_directory_modes(key_dir: Path) -> None:
    SimulatedAuthority.open(key_dir)
    assert stat.S_IMODE(key_dir.stat().st_mode) == 0o700
    files = list(key_dir.iterdir())
    assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)


def test_roots_say_simulated(authority: SimulatedAuthority) -> None:
    for root in ("intel_root", "amd_ark", "nvidia_root"):
        assert "SIMULATED" in authority.certs[root].subject.rfc4514_string()


def _open_and_sign(key_dir: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    auth = SimulatedAuthority.open(key_dir)
    queue.put((auth.der("intel_root"), auth.nvidia_fwid))


def test_concurrent_processes_share_one_authority(key_dir: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_open_and_sign, args=(str(key_dir), queue)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert len(set(results)) == 1
    here = SimulatedAuthority.open(key_dir)
    assert results[0] == (here.der("intel_root"), here.nvidia_fwid)
    assert not [p for p in os.listdir(key_dir.parent) if p.startswith(".sim-authority-")]
