"""How protocol messages reach a broker: in the same process, or over HTTP.

Both transports carry the same JSON documents. The in-process transport serialises every message to JSON
and back, so what works in tests works on the wire. A malformed message gets :class:`~cchet.BrokerError`
with the broker's explanation; an unreachable broker gets :class:`~cchet.BrokerError` naming the URL.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any, Protocol

from cchet.broker.messages import ProtocolError
from cchet.errors import BrokerError

if TYPE_CHECKING:
    from cchet.broker.broker import KeyBroker

__all__ = ["HttpTransport", "InProcessTransport", "Transport"]

STEPS = ("challenge", "release")


class Transport(Protocol):
    def send(self, step: str, message: dict[str, Any]) -> dict[str, Any]:
        """Deliver ``message`` for protocol ``step`` ("challenge" or "release") and return the answer."""


class InProcessTransport:
    """Calls a :class:`~cchet.broker.broker.KeyBroker` in this process, through JSON both ways."""

    def __init__(self, broker: KeyBroker) -> None:
        self.broker = broker

    def send(self, step: str, message: dict[str, Any]) -> dict[str, Any]:
        if step not in STEPS:
            raise ValueError(f"step must be one of {STEPS}")
        wire = json.loads(json.dumps(message))
        try:
            answer = getattr(self.broker, step)(wire)
        except ProtocolError as e:
            raise BrokerError(f"the broker rejected the {step} message: {e}") from None
        result: dict[str, Any] = json.loads(json.dumps(answer))
        return result


class HttpTransport:
    """POSTs JSON to ``{url}/v1/{step}``. ``cafile`` pins the CA of an ``https`` broker."""

    def __init__(self, url: str, *, timeout_s: float = 30.0, cafile: str | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"broker URL must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self._timeout = timeout_s
        self._context = ssl.create_default_context(cafile=cafile) if url.startswith("https://") else None

    def send(self, step: str, message: dict[str, Any]) -> dict[str, Any]:
        if step not in STEPS:
            raise ValueError(f"step must be one of {STEPS}")
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            f"{self.url}/v1/{step}",
            data=json.dumps(message).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            opened = urllib.request.urlopen(request, timeout=self._timeout, context=self._context)  # noqa: S310
            with opened as response:
                body = response.read()
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:2000]
            with contextlib.suppress(ValueError, KeyError, TypeError):
                detail = json.loads(detail)["error"]
            raise BrokerError(
                f"the broker at {self.url} refused the {step} message (HTTP {e.code}): {detail}"
            ) from None
        except (urllib.error.URLError, OSError) as e:
            raise BrokerError(
                f"cannot reach the broker at {self.url} ({e}); check that 'cchet broker serve' runs there"
            ) from None
        try:
            doc = json.loads(body)
        except ValueError:
            raise BrokerError(f"the broker at {self.url} answered with something that is not JSON") from None
        if not isinstance(doc, dict):
            raise BrokerError(f"the broker at {self.url} answered with a non-object")
        return doc
