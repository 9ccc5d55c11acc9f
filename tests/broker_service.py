"""``cchet broker serve`` as a test fixture: start it on a free port, read the URL and broker id it prints,
stop it with SIGTERM."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

CCHET = Path(sys.executable).with_name("cchet")


@dataclass
class ServedBroker:
    url: str
    broker_id: str
    proc: subprocess.Popen[str]
    stderr: str = field(default="")


@contextlib.contextmanager
def broker_serve(*args: object, env: dict[str, str] | None = None) -> Iterator[ServedBroker]:
    """Run ``cchet broker serve --port 0 ARGS``; ``stderr`` holds what it wrote once it has stopped."""
    proc = subprocess.Popen(
        [str(CCHET), "broker", "serve", "--port", "0", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline() + proc.stdout.readline()
        url, broker_id = re.search(r"serving (\S+)", banner), re.search(r"workers\): ([0-9a-f]{64})", banner)
        assert url and broker_id, banner + (proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        served = ServedBroker(url.group(1), broker_id.group(1), proc)
        yield served
    finally:
        proc.send_signal(signal.SIGTERM)
        _, served_stderr = proc.communicate(timeout=30)
    served.stderr = served_stderr
