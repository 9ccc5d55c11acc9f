"""Crash-safe file replacement: write a temporary file, fsync it, rename it over the target, fsync the folder.

A reader sees either the old file or the new one, never a torn mix, whatever moment a crash hits.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["replace_file"]


def replace_file(path: Path, data: bytes, *, before_rename: Callable[[], None] | None = None) -> None:
    """Durably replace ``path`` with ``data`` (mode 0600). ``before_rename`` runs after the fsync of the
    temporary file and before the rename: tests use it to crash the process at exactly that point."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if before_rename is not None:
            before_rename()
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
