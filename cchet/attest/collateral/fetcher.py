"""Fetching collateral over HTTP(S): the interface verification is given, and a urllib implementation.

Verification never fetches on its own; a :class:`Fetcher` is injected through
:class:`~cchet.attest.collateral.source.CollateralSource`. What is fetched is verified like everything else
(signatures, chains to the pinned roots, validity), so the transport only affects availability.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from cchet.errors import FetchError

__all__ = ["FetchError", "Fetcher", "Response", "UrllibFetcher"]


@dataclass(frozen=True)
class Response:
    """A successful answer: the body and the headers (names lowercase)."""

    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


class Fetcher(Protocol):
    """``get(url)`` returns the :class:`Response` or raises :class:`FetchError`."""

    def get(self, url: str) -> Response: ...


@dataclass(frozen=True)
class UrllibFetcher:
    """GET with the standard library, ``timeout`` seconds per request, HTTP(S) only."""

    timeout: float = 20.0

    def get(self, url: str) -> Response:
        if not url.startswith(("https://", "http://")):
            raise FetchError(f"{url}: only http(s) URLs are fetched")
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as r:  # noqa: S310 (scheme checked above)
                return Response(r.read(), {k.lower(): v for k, v in r.headers.items()})
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise FetchError(f"{url}: {e}") from None
