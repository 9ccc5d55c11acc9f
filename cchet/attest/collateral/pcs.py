"""Intel PCS responses -> dcap-qvl ``QuoteCollateralV3`` fields.

TCB info and QE identity responses are ``{"tcbInfo"|"enclaveIdentity": {...}, "signature": "<hex>"}``; the
signature covers the exact bytes of the inner object as served, so they are cut out of the body, never
re-serialised. Issuer chains come URL-encoded in response headers.
"""

from __future__ import annotations

import json
import urllib.parse

from cchet.attest.collateral.fetcher import FetchError, Response

__all__ = ["issuer_chain", "signed_object"]


def signed_object(response: Response, name: str, url: str) -> tuple[str, str]:
    """(exact text of ``name``'s object, signature hex) from a PCS JSON body; :class:`FetchError` if absent."""
    text = response.body.decode("utf-8", "replace")
    key = f'"{name}"'
    at = text.find(key)
    if at < 0:
        raise FetchError(f"{url}: no {name} in the response")
    start = text.find("{", at + len(key))
    try:
        _obj, end = json.JSONDecoder().raw_decode(text, start)
        signature = json.loads(text)["signature"]
    except (ValueError, KeyError, TypeError) as e:
        raise FetchError(f"{url}: malformed {name} response: {e}") from None
    return text[start:end], str(signature)


def issuer_chain(response: Response, header: str, url: str) -> str:
    """The URL-decoded PEM chain from ``header``; :class:`FetchError` when missing."""
    value = response.headers.get(header.lower())
    if not value:
        raise FetchError(f"{url}: no {header} header")
    return urllib.parse.unquote(value)
