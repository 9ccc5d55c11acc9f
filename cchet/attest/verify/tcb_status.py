"""Intel's TCB status rules: matching TCB levels and converging the platform, TDX module and QE statuses.

Per Intel's DCAP Quote Verification Library and the PCS TCB info v3 documentation: the platform status is
that of the first TCB level, in descending order of (SGX components, PCE SVN, TDX components) as Intel's
library keeps them whatever the order in the JSON, whose SGX components and PCE SVN are all at or
below the PCK certificate's, and for TDX whose TDX components are at or below TEE_TCB_SVN (bytes 0 and 1 are
skipped when the TDX module version, byte 1, is not 0: the TDX module identity judges them). The TDX module
and QE statuses then converge into it: an OutOfDate module or QE makes an UpToDate/SWHardeningNeeded platform
OutOfDate and a ConfigurationNeeded/ConfigurationAndSWHardeningNeeded one OutOfDateConfigurationNeeded; a
Revoked one makes it Revoked. Advisory ids are the union of the levels that contributed.

The levels are :class:`~cchet.attest.formats.intel_collateral.TcbLevel` objects, parsed (and so of the right
shape: 16 SGX components, 16 TDX components in TDX TCB info) from authenticated TCB info; nothing here
raises for their content.
"""

from __future__ import annotations

from collections.abc import Sequence

from cchet.attest.formats.intel_collateral import TcbLevel
from cchet.attest.tcb import STATUS_ORDER

__all__ = ["STATUS_ORDER", "converge", "matches_platform_level", "ordered_levels"]


def ordered_levels(levels: Sequence[TcbLevel]) -> list[TcbLevel]:
    """``levels`` highest first: by SGX components, then PCE SVN, then TDX components (ties keep their
    order)."""

    def key(level: TcbLevel) -> tuple[tuple[int, ...], int, tuple[int, ...]]:
        return level.tcb.sgx_svns, level.tcb.pce_svn, level.tcb.tdx_svns or ()

    return sorted(levels, key=key, reverse=True)


def matches_platform_level(
    level: TcbLevel, pck_components: Sequence[int], pce_svn: int, tee_tcb_svn: bytes | None
) -> bool:
    """Whether ``level`` applies to a platform with these SVNs: the 16 SGX components of the PCK certificate,
    its PCE SVN and, for TDX, the 16-byte TEE_TCB_SVN (None for SGX). A level without TDX components applies
    to no TD."""
    tcb = level.tcb
    if any(have < need for have, need in zip(pck_components, tcb.sgx_svns, strict=True)):
        return False
    if pce_svn < tcb.pce_svn:
        return False
    if tee_tcb_svn is not None:
        tdx = tcb.tdx_svns
        if tdx is None:
            return False
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
