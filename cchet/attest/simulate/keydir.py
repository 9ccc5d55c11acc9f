"""The simulators' key directories: made whole or not at all, readable by their owner only.

A simulator fills a fresh private folder beside its target and renames it into place, so a reader never
sees half a directory; when another process made the target first, its keys are the ones kept. Files are
created exclusively with mode 0600 and synced before the rename. The keys are SIMULATED: they protect
nothing, but they are kept like keys so that a copy of a simulated setup does not teach bad habits.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

__all__ = ["create_key_dir", "pkcs8_pem", "write_private"]


def write_private(path: Path, data: bytes) -> None:
    """Writes ``data`` to the new file ``path`` (mode 0600, never overwriting) and syncs it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def pkcs8_pem(key: PrivateKeyTypes) -> bytes:
    """``key`` as an unencrypted PKCS#8 PEM (the simulated keys' file format)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def create_key_dir(target: Path, prefix: str, last: str, fill: Callable[[Path], None]) -> None:
    """Makes the directory ``target`` (mode 0700): ``fill`` writes its files into a fresh folder named
    ``prefix...`` beside it, which is then renamed into place. When the rename fails because another process
    made ``target`` first (its file ``last``, written last, exists), that directory is kept; any other
    failure is raised. The fresh folder never outlives the call."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    try:
        fill(tmp)
        os.chmod(tmp, 0o700)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / last).exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
