"""A scanner for secrets in what Ray, the host and the cloud can read: files under Ray's temp dir (session
directories, logs, spill files) and the memory of every raylet and GCS server process."""

from __future__ import annotations

import base64
import os
from collections import Counter
from pathlib import Path


def patterns(raw: bytes) -> list[bytes]:
    """The forms a secret may take when written out: raw, hex and base64."""
    return [raw, raw.hex().encode(), base64.b64encode(raw)]


def _scan_files(root: Path, needles: list[bytes]) -> Counter[str]:
    hits: Counter[str] = Counter()
    paths = (Path(folder, name) for folder, _, names in os.walk(root) for name in names)  # skips vanished folders
    for path in paths:
        if not path.is_file() or path.is_symlink():
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if any(p in data for p in needles):
            kind = "spill" if "spill" in str(path) else "logs" if "logs" in str(path) else "session"
            hits[kind] += 1
    return hits


def _scan_memory(pid: int, needles: list[bytes]) -> int:
    hits = 0
    try:
        maps, mem = open(f"/proc/{pid}/maps"), open(f"/proc/{pid}/mem", "rb", buffering=0)  # noqa: SIM115
    except OSError:
        return 0
    with maps, mem:
        for line in maps:
            fields = line.split()
            if "r" not in fields[1] or (len(fields) > 5 and fields[5] in ("[vvar]", "[vsyscall]", "[vdso]")):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            try:
                mem.seek(start)
                region = mem.read(end - start)
            except (OSError, ValueError, OverflowError):
                continue
            hits += sum(region.count(p) for p in needles)
    return hits


def ray_daemons() -> list[tuple[str, int]]:
    """(name, pid) of every raylet and GCS server on this machine."""
    import psutil

    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        name = proc.info["name"] or ""
        cmd = " ".join(proc.info["cmdline"] or [])
        for daemon in ("raylet", "gcs_server"):
            if daemon in name or f"/{daemon} " in cmd:
                found.append((daemon, proc.pid))
    return found


def scan(root: Path, raw: bytes) -> Counter[str]:
    """Where ``raw`` (in any of its :func:`patterns`) can be found."""
    needles = patterns(raw)
    hits = _scan_files(root, needles)
    for name, pid in ray_daemons():
        n = _scan_memory(pid, needles)
        if n:
            hits[f"{name} memory"] += n
    return hits
