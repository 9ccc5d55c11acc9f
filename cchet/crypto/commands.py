"""``cchet seal``, ``cchet unseal`` and ``cchet key new``: sealed files at rest."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Placeholder registration; filled in with the file commands."""
