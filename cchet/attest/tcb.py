"""Intel's TCB status names, from most to least trustworthy (shared by policy, verification and the simulator)."""

from __future__ import annotations

__all__ = ["STATUS_ORDER"]

STATUS_ORDER = (
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "Revoked",
)
