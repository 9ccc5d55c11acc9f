"""A call's diagnostics: its output, its log records and its exception, sealed beside its result.

The worker seals an :class:`Outcome` under the call's output key and ``diag`` context; the driver opens it
first, replays the output and the records (:func:`replay`) and re-raises the exception with the remote
traceback as a note. The exception travels pickled inside the sealed outcome, so it is unpickled only after
its tags verified.
"""

from __future__ import annotations

import logging
import pickle
import sys
import traceback
from dataclasses import dataclass, field

from cchet.errors import IntegrityError

__all__ = ["Outcome", "failed", "raised", "replay"]


@dataclass
class Outcome:
    """What the diagnostics of a call hold."""

    stdout: str = ""
    stderr: str = ""
    logs: list[tuple[str, int, str]] = field(default_factory=list)
    error: bytes | None = None
    traceback: str = ""


def failed(outcome: Outcome, error: BaseException) -> Outcome:
    """Record ``error`` (pickled; an unpicklable one keeps its type name and message) and its traceback."""
    try:
        outcome.error = pickle.dumps(error)
    except Exception:  # unpicklable exception: keep its type name and message
        outcome.error = pickle.dumps(RuntimeError(f"{type(error).__qualname__}: {error}"))
    outcome.traceback = "".join(traceback.format_exception(error))
    return outcome


def raised(outcome: object) -> BaseException | None:
    """The exception an opened outcome holds (with the remote traceback as a note), or None."""
    if not isinstance(outcome, Outcome):
        raise IntegrityError()
    if outcome.error is None:
        return None
    error = pickle.loads(outcome.error)  # noqa: S301 - inside the sealed outcome: authenticated before this
    if not isinstance(error, BaseException):
        raise IntegrityError()
    if outcome.traceback:
        error.add_note("remote traceback (sealed end to end):\n" + outcome.traceback)
    return error


def replay(outcome: Outcome, where: str) -> None:
    """In the driver: print the call's output and re-log its records under their own logger names."""
    if outcome.stdout:
        sys.stdout.write(outcome.stdout)
    if outcome.stderr:
        sys.stderr.write(outcome.stderr)
    for name, level, message in outcome.logs:
        logging.getLogger(name).log(level, "(%s) %s", where, message)
