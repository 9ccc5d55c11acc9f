"""(being written) -- see cchet.attest.tees."""

from __future__ import annotations

from typing import Any

TEES: dict[str, Any] = {}
CHECKS: tuple[Any, ...] = ()
