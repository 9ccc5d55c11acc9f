"""One failed verification check: a message that also knows which check failed, and the error that reports it.

Verification runs every independent check and collects a :class:`Failure` for each one that fails; then
:func:`raise_failures` raises one :class:`~cchet.errors.VerificationError` listing them all, of the class
registered for the first failure's check (:data:`cchet.attest.verify.checks.CHECKS`). A :class:`Failure` is
a ``str`` (its message), so ``VerificationError.failures`` stays a tuple of strings for callers that only
print it, while tests and ``cchet verify --json`` can read ``.check``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

from cchet.errors import VerificationError

__all__ = ["Failure", "check_of", "raise_failures"]


class Failure(str):
    """The message of one failed check; ``check`` is its id in :data:`~cchet.attest.verify.checks.CHECKS`."""

    check: str

    def __new__(cls, check: str, message: str) -> Failure:
        from cchet.attest.verify.checks import CHECKS

        if check not in CHECKS:
            raise ValueError(f"unknown verification check {check!r}")
        self = super().__new__(cls, message)
        self.check = check
        return self

    def __reduce__(self) -> tuple[type[Failure], tuple[str, str]]:
        return (Failure, (self.check, str(self)))


def check_of(failure: str) -> str | None:
    """The check id of ``failure``, or None for a plain string (from a verifier that does not tag them)."""
    return failure.check if isinstance(failure, Failure) else None


def raise_failures(failures: Sequence[str]) -> NoReturn:
    """Raises one :class:`VerificationError` listing ``failures`` (at least one), of the class registered for
    the first failure's check (plain :class:`VerificationError` when it carries no check)."""
    from cchet.attest.verify.checks import CHECKS

    if not failures:
        raise ValueError("raise_failures needs at least one failure")
    check = check_of(failures[0])
    error = CHECKS[check].error if check is not None else VerificationError
    raise error(failures)
