"""How protocol messages reach a broker: in the same process, or over HTTP.

Both transports carry the same JSON documents. The in-process transport serialises every message to JSON
and back, so what works in tests works on the wire. A malformed message gets :class:`~cchet.BrokerError`
with the broker's explanation; an unreachable broker gets :class:`~cchet.BrokerError` naming the URL; a broker
that asks the client to come back later (HTTP 429 or 503 with ``Retry-After``, or a full nonce table in
process) gets :class:`~cchet.BrokerBusy` with ``retry_after_s`` -- over HTTP after the transport waited as
told and retried for up to :data:`BUSY_WAIT_S` (by default). The HTTP transport reads at most
:data:`MAX_RESPONSE` bytes of an answer (before its signature is checked): a longer one is a
:class:`~cchet.BrokerError`, so a hostile endpoint cannot exhaust the worker's memory.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any, Protocol

from cchet.errors import BrokerBusy, BrokerError, ProtocolError

if TYPE_CHECKING:
    from cchet.broker.broker import KeyBroker

__all__ = ["BUSY_WAIT_S", "MAX_RESPONSE", "HttpTransport", "InProcessTransport", "Transport"]

STEPS = ("challenge", "release")
MAX_RESPONSE = 4 << 20
"""Bytes of a broker's answer the HTTP transport reads, at most (a release of 255 keys is well under 1 MiB)."""
BUSY_WAIT_S = 60.0
"""How long the HTTP transport keeps retrying a message a busy broker turned away before it raises."""


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
    """POSTs JSON to ``{url}/v1/{step}``. ``cafile`` pins the CA of an ``https`` broker; ``busy_wait_s`` is how
    long a message a busy broker turned away is retried (0: raise :class:`~cchet.BrokerBusy` at once)."""

    def __init__(
        self, url: str, *, timeout_s: float = 30.0, cafile: str | None = None, busy_wait_s: float = BUSY_WAIT_S
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"broker URL must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self._timeout = timeout_s
        self._busy_wait = busy_wait_s
        self._context = ssl.create_default_context(cafile=cafile) if url.startswith("https://") else None

    def send(self, step: str, message: dict[str, Any]) -> dict[str, Any]:
        """POST one message; while the broker says it is busy, wait as it asks (``Retry-After``, for at most
        ``busy_wait_s`` in all) and send it again -- a busy broker consumed nothing -- then give up with
        :class:`~cchet.BrokerBusy`."""
        if step not in STEPS:
            raise ValueError(f"step must be one of {STEPS}")
        deadline = time.monotonic() + self._busy_wait
        while True:
            try:
                return self._send_once(step, message)
            except BrokerBusy as e:
                wait = max(0.05, min(float(e.retry_after_s), 5.0))
                if time.monotonic() + wait > deadline:
                    raise
                time.sleep(wait)

    def _send_once(self, step: str, message: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            f"{self.url}/v1/{step}",
            data=json.dumps(message).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            opened = urllib.request.urlopen(request, timeout=self._timeout, context=self._context)  # noqa: S310
            with opened as response:
                body = self._read(response, step)
        except urllib.error.HTTPError as e:
            detail = self._read(e, step).decode(errors="replace")[:2000]
            with contextlib.suppress(ValueError, KeyError, TypeError):
                detail = json.loads(detail)["error"]
            refusal = f"the broker at {self.url} refused the {step} message (HTTP {e.code}): {detail}"
            retry_after = e.headers.get("Retry-After", "")
            if e.code in (429, 503) and retry_after.isdigit():
                raise BrokerBusy(refusal, int(retry_after)) from None
            raise BrokerError(refusal) from None
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

    def _read(self, response: Any, step: str) -> bytes:
        body: bytes = response.read(MAX_RESPONSE + 1)
        if len(body) > MAX_RESPONSE:
            raise BrokerError(
                f"the broker at {self.url} answered the {step} message with more than {MAX_RESPONSE} bytes "
                "(MAX_RESPONSE); no broker answer is that long: check the URL points at a cchet broker"
            )
        return body
