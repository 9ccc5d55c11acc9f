"""Collateral: what verification needs beyond the evidence, and where it comes from.

Intel TCB info, QE identity and CRLs (Intel PCS), AMD ASK/ASVK + ARK chains, VCEKs and CRLs (AMD KDS), and
NVIDIA signed RIMs (NVIDIA RIM service). :class:`CollateralSource` looks in a local
:class:`CollateralCache` first and asks an injected :class:`Fetcher` only when the cache has nothing current;
without a fetcher nothing reaches the network. ``cchet collateral fetch|status`` fills and inspects the cache.
"""

from cchet.attest.collateral.cache import CacheEntry, CollateralCache, default_cache_dir
from cchet.attest.collateral.fetcher import Fetcher, FetchError, Response, UrllibFetcher
from cchet.attest.collateral.services import ServiceUrls
from cchet.attest.collateral.source import CollateralSource

__all__ = [
    "CacheEntry",
    "CollateralCache",
    "CollateralSource",
    "FetchError",
    "Fetcher",
    "Response",
    "ServiceUrls",
    "UrllibFetcher",
    "default_cache_dir",
]
