"""Per-call capture of everything a confidential call writes, so that none of it reaches Ray's log files.

Three layers, installed once per worker process (:func:`install`) and active only while a call runs:

* ``sys.stdout`` and ``sys.stderr`` become proxies that send each write to the call running in the current
  thread or asyncio task (a context variable), or to the real stream when none is;
* ``logging.Logger.handle`` hands every record of a call -- from any logger, whatever its handlers or
  ``propagate`` (levels apply as usual) -- to that call instead of to the handlers;
* file descriptors 1 and 2 point at in-memory files (``memfd``) from the moment the first call starts until
  the last one ends, catching ``os.write``, C-level ``printf`` (C stdio is flushed at every boundary) and
  subprocesses, which inherit them.

Python-level output is exact per call even when calls overlap in one process (threaded and async actors).
Bytes written straight to the descriptors cannot name their call: while exactly one call runs they are its
own; bytes that arrive while several overlap are discarded, and each of those calls fails with
:class:`~cchet.CchetError` (:data:`OVERLAP`) naming ``max_concurrency`` instead of returning output that may
be another call's.

Limits: a thread the call started keeps writing after the call ends; its later output goes where the process's
output goes. Each stream keeps at most :data:`MAX_CAPTURE` characters per call.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_CAPTURE", "OVERLAP", "CallOutput", "call_output", "install"]

MAX_CAPTURE = 8 << 20
_TRUNCATED = "\n[cchet: output truncated at 8 MiB]\n"


OVERLAP = (
    "this call overlapped with another call of the same actor, and output was written to file descriptors 1 or "
    "2 (os.write, C code or a subprocess) meanwhile: cchet cannot tell whose it is, so it returns neither call's "
    "result rather than mix their output. Give the actor max_concurrency=1, or write through print() and "
    "logging, which are captured per call"
)


@dataclass(eq=False)
class CallOutput:
    """What one call wrote: Python-level text and records, and bytes that reached the descriptors."""

    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    logs: list[tuple[str, int, str]] = field(default_factory=list)
    fd: tuple[bytearray, bytearray] = field(default_factory=lambda: (bytearray(), bytearray()))
    sizes: list[int] = field(default_factory=lambda: [0, 0])
    overlapped: bool = False

    def write(self, stream: int, text: str) -> None:
        target = self.stdout if stream == 0 else self.stderr
        if self.sizes[stream] < MAX_CAPTURE:
            target.append(text if self.sizes[stream] + len(text) <= MAX_CAPTURE else _TRUNCATED)
        self.sizes[stream] += len(text)

    def text(self, stream: int) -> str:
        python = "".join(self.stdout if stream == 0 else self.stderr)
        return python + self.fd[stream].decode("utf-8", "replace")


_current: ContextVar[CallOutput | None] = ContextVar("cchet_call_output", default=None)


class _Stream:
    """``sys.stdout``/``sys.stderr``: writes go to the current call, or to the real stream outside calls."""

    def __init__(self, index: int, real: Any) -> None:
        self._index = index
        self._real = real

    def write(self, text: str) -> Any:
        out = _current.get()
        if out is None:
            return self._real.write(text)
        out.write(self._index, str(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if _current.get() is None:
            self._real.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _handle(logger: logging.Logger, record: logging.LogRecord) -> None:
    """``Logger.handle``: inside a call, the record goes to the call and to no handler."""
    out = _current.get()
    if out is None:
        _original_handle(logger, record)
        return
    if logger.disabled or not logger.filter(record):
        return
    try:
        message = record.getMessage()
    except Exception:  # a malformed record: keep what it said
        message = f"{record.msg!r} % {record.args!r}"
    out.logs.append((record.name, record.levelno, message))


_original_handle = logging.Logger.handle


class _Descriptors:
    """Descriptors 1 and 2 redirected to in-memory files while any call runs; their bytes attributed between
    boundaries (a call starting or ending) to the one call running, or to none."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active: list[CallOutput] = []
        self.files: tuple[int, int] | None = None
        self.saved: tuple[int, int] | None = None
        self.read = [0, 0]
        try:
            self.libc_flush: Any = ctypes.CDLL(None).fflush
        except (OSError, AttributeError):  # no C library to flush
            self.libc_flush = None

    def _flush(self) -> None:
        for stream in (sys.__stdout__, sys.__stderr__):
            if stream is not None:
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
        if self.libc_flush is not None:
            self.libc_flush(None)

    def _drain(self) -> None:
        assert self.files is not None
        self._flush()
        for i, fd in enumerate(self.files):
            size = os.fstat(fd).st_size
            if size > self.read[i]:
                data = os.pread(fd, size - self.read[i], self.read[i])
                self.read[i] = size
                if len(self.active) == 1:
                    out = self.active[0]
                    room = max(0, MAX_CAPTURE - len(out.fd[i]))
                    out.fd[i].extend(data[:room])
                else:
                    for out in self.active:
                        out.overlapped = True

    def enter(self, out: CallOutput) -> None:
        with self.lock:
            if not self.active:
                self._redirect()
            else:
                self._drain()
            self.active.append(out)

    def leave(self, out: CallOutput) -> None:
        with self.lock:
            self._drain()
            self.active.remove(out)
            if not self.active:
                self._restore()

    def _redirect(self) -> None:
        self._flush()
        if self.files is None:
            self.files = (
                os.memfd_create("cchet-stdout", os.MFD_CLOEXEC),
                os.memfd_create("cchet-stderr", os.MFD_CLOEXEC),
            )
        for fd in self.files:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
        self.read = [0, 0]
        self.saved = (os.dup(1), os.dup(2))
        os.dup2(self.files[0], 1)
        os.dup2(self.files[1], 2)

    def _restore(self) -> None:
        assert self.saved is not None
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        for fd in self.saved:
            os.close(fd)
        self.saved = None


_descriptors = _Descriptors()
_installed = False
_install_lock = threading.Lock()


def install() -> None:
    """Put the stream proxies and the logging hook in place (once per process; a no-op afterwards)."""
    global _installed  # noqa: PLW0603 - once per process
    with _install_lock:
        if _installed:
            return
        sys.stdout = _Stream(0, sys.stdout)
        sys.stderr = _Stream(1, sys.stderr)
        logging.Logger.handle = _handle  # type: ignore[method-assign,assignment]
        _installed = True


@contextlib.contextmanager
def call_output() -> Iterator[CallOutput]:
    """Capture everything the code in this block writes (this thread or asyncio task, and the descriptors)."""
    install()
    out = CallOutput()
    _descriptors.enter(out)
    token = _current.set(out)
    try:
        yield out
    finally:
        _current.reset(token)
        _descriptors.leave(out)
