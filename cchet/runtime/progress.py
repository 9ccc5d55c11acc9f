"""Progress bars for long ``cchet.get`` and ``cchet.put`` transfers (tqdm; notebook widgets via ``tqdm.auto``).

A bar appears once one call has sealed or opened more than :data:`THRESHOLD_BYTES` (64 MiB) of sealed data, and
only when bars are enabled: by default in interactive sessions (a Jupyter kernel, or stderr on a terminal) and
never in scripts, tests, Ray jobs or workers; ``CCHET_PROGRESS=1`` turns them on everywhere, ``CCHET_PROGRESS=0``
off. A bar shows sizes and rates, never data.

Limits: the bar counts sealed bytes and advances per sealed part (a value's pickle, then each out-of-band buffer
such as a numpy array), so one large array advances in a single step: the bar says the call is working and how
fast, not a fine-grained ETA. The time Ray spends moving objects before opening starts is not on the bar.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = ["THRESHOLD_BYTES", "Transfer", "advance", "enabled", "expect", "transfer"]

THRESHOLD_BYTES = 64 << 20
ENV = "CCHET_PROGRESS"


def _interactive() -> bool:
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None and type(shell).__name__ == "ZMQInteractiveShell":  # a Jupyter kernel
        return True
    return sys.stderr is not None and sys.stderr.isatty()


def enabled() -> bool:
    """Whether bars may show in this process: ``$CCHET_PROGRESS`` (``1``/``0``) if set, else interactivity."""
    setting = os.environ.get(ENV)
    if setting is not None and setting.strip():
        return setting.strip().lower() not in ("0", "false", "no", "off")
    return _interactive()


class Transfer:
    """The bytes one ``cchet.get`` or ``cchet.put`` is moving; holds its bar once one is shown (``bar``)."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.total = 0
        self.done = 0
        self.bar: Any = None

    def expect(self, nbytes: int) -> None:
        """``nbytes`` more will move; shows the bar when the total passes the threshold (if enabled)."""
        self.total += nbytes
        if self.bar is not None:
            self.bar.total = self.total
            self.bar.refresh()
        elif self.total > THRESHOLD_BYTES and enabled():
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=self.total, initial=self.done, desc=self.desc, unit="B", unit_scale=True, unit_divisor=1024
            )

    def advance(self, nbytes: int) -> None:
        """``nbytes`` have moved."""
        self.done += nbytes
        if self.bar is not None:
            self.bar.update(nbytes)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


_current: ContextVar[Transfer | None] = ContextVar("cchet_transfer", default=None)


@contextmanager
def transfer(desc: str) -> Iterator[Transfer]:
    """The scope of one get or put: values sealed or opened inside it (in this thread or task) report to it."""
    current = Transfer(desc)
    token = _current.set(current)
    try:
        yield current
    finally:
        _current.reset(token)
        current.close()


def expect(nbytes: int) -> None:
    """Report bytes about to move to the current transfer, if any (a no-op outside ``transfer``)."""
    current = _current.get()
    if current is not None:
        current.expect(nbytes)


def advance(nbytes: int) -> None:
    """Report bytes that moved to the current transfer, if any (a no-op outside ``transfer``)."""
    current = _current.get()
    if current is not None:
        current.advance(nbytes)
