"""Intel's TCB status rules: matching TCB levels and converging the platform, TDX module and QE statuses.

Per Intel's DCAP Quote Verification Library and the PCS TCB info v3 documentation: the platform status is
that of the first TCB level, in descending order of (SGX components, PCE SVN, TDX components) as Intel's
library keeps them whatever the order in the JSON, whose SGX components and PCE SVN are all at or
below the PCK certificate's, and for TDX whose TDX components are at or below TEE_TCB_SVN (bytes 0 and 1 are
skipped when the TDX module version, byte 1, is not 0: the TDX module identity judges them). The TDX module
and QE statuses then converge into it: an OutOfDate module or QE makes an UpToDate/SWHardeningNeeded platform
OutOfDate and a ConfigurationNeeded/ConfigurationAndSWHardeningNeeded one OutOfDateConfigurationNeeded; a
Revoked one makes it Revoked. Advisory ids are the union of the levels that contributed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cchet.attest.tcb import STATUS_ORDER

__all__ = ["STATUS_ORDER", "converge", "matches_platform_level", "ordered_levels", "worst_status"]


def worst_status(*statuses: str) -> str:
    """The least trustworthy of the statuses, by :data:`STATUS_ORDER` (unknown names count as Revoked)."""
    rank = {s: i for i, s in enumerate(STATUS_ORDER)}
    return max(statuses, key=lambda s: rank.get(s, len(STATUS_ORDER)))


def _svns(items: Any) -> list[int]:
    return [int(c["svn"]) for c in items]


def ordered_levels(levels: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``levels`` highest first: by SGX components, then PCE SVN, then TDX components (ties keep their
    order). Raises ``KeyError``/``ValueError``/``TypeError`` for a malformed level."""

    def key(level: dict[str, Any]) -> tuple[list[int], int, list[int]]:
        tcb = level["tcb"]
        return _svns(tcb["sgxtcbcomponents"]), int(tcb["pcesvn"]), _svns(tcb.get("tdxtcbcomponents", []))

    return sorted(levels, key=key, reverse=True)


def matches_platform_level(
    level: dict[str, Any], pck_components: Sequence[int], pce_svn: int, tee_tcb_svn: bytes | None
) -> bool:
    """Whether ``level`` applies to a platform with these SVNs (``tee_tcb_svn`` None for SGX). Raises
    ``KeyError``/``ValueError``/``TypeError`` for a malformed level."""
    tcb = level["tcb"]
    sgx = _svns(tcb["sgxtcbcomponents"])
    if len(sgx) != 16 or len(pck_components) != 16:
        raise ValueError("SGX component count mismatch")
    if any(have < need for have, need in zip(pck_components, sgx, strict=True)):
        return False
    if pce_svn < int(tcb["pcesvn"]):
        return False
    if tee_tcb_svn is not None:
        tdx = _svns(tcb["tdxtcbcomponents"])
        if len(tdx) != 16:
            raise ValueError("TDX component count mismatch")
        start = 2 if tee_tcb_svn[1] > 0 else 0
        if any(tee_tcb_svn[i] < tdx[i] for i in range(start, 16)):
            return False
    return True


def converge(platform: str, other: str) -> str:
    """The platform status after the TDX module's or the QE's status ``other`` is taken into account."""
    if other == "Revoked":
        return "Revoked"
    if other == "OutOfDate":
        if platform in ("UpToDate", "SWHardeningNeeded"):
            return "OutOfDate"
        if platform in ("ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded"):
            return "OutOfDateConfigurationNeeded"
    return platform
