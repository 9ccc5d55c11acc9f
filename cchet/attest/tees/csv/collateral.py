"""Hygon collateral: a chip's HSK and CEK certificates (Hygon's KDS, by chip serial number) and the Hygon Root Key
certificate, which :class:`~cchet.attest.collateral.CollateralSource` gets from the local collateral cache or
its injected fetcher -- never from the network on its own.

Hygon's KDS serves ``https://cert.hygon.cn/hsk_cek?snumber=<serial>`` (the HSK in CA format then the CEK in CSV
format, 832 + 2084 bytes) and ``https://cert.hygon.cn/hrk`` (the HRK, 832 bytes), cached as
``<cache>/hygon/hsk_cek-<serial>.cert`` and ``<cache>/hygon/hrk.cert`` (trustee keeps the same HSK/CEK bytes at
``/opt/hygon/csv/hsk_cek/<serial>/hsk_cek.cert``). Hygon's certificates carry no validity period, so a cached one
is used as it is; the cache trusts nothing: everything read from it is verified to the pinned HRK.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Protocol

from cchet.attest.collateral.services import ServiceUrls

__all__ = ["HygonProvider", "cache_path", "hygon_source", "service_urls"]


class HygonProvider(Protocol):
    """What the CSV verifier asks of a collateral provider; each returns None when it has nothing and raises
    :class:`~cchet.errors.FetchError` when a fetch failed."""

    def hygon_hsk_cek(self, serial: str, now: dt.datetime) -> bytes | None:
        """The HSK (CA format) followed by the CEK (CSV format) of chip ``serial``."""

    def hygon_hrk(self, now: dt.datetime) -> bytes | None:
        """The Hygon Root Key certificate (CA format)."""


def hygon_source(provider: Any) -> HygonProvider | None:
    """``provider`` (the options' collateral) when it answers the Hygon methods (a
    :class:`~cchet.attest.collateral.CollateralSource` does), else None."""
    if callable(getattr(provider, "hygon_hsk_cek", None)) and callable(getattr(provider, "hygon_hrk", None)):
        found: HygonProvider = provider
        return found
    return None


def service_urls(source: HygonProvider | None) -> ServiceUrls:
    """The KDS URLs ``source`` fetches from (the default ones when it is not a collateral source)."""
    from cchet.attest.collateral.source import CollateralSource

    return source.urls if isinstance(source, CollateralSource) else ServiceUrls()


def cache_path(source: HygonProvider | None, key: str) -> Path | None:
    """Where ``source`` caches ``key`` (``hrk``, ``hsk_cek-<serial>``); None without a cache."""
    from cchet.attest.collateral.source import CollateralSource

    if isinstance(source, CollateralSource) and source.cache is not None:
        return source.cache.path("hygon", key)
    return None
