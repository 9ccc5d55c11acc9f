"""The broker over HTTP: an aiohttp application, run in a background thread or as ``cchet broker serve``.

Routes: ``POST /v1/challenge`` and ``POST /v1/release`` (the protocol), ``GET /v1/identity`` (the broker
id, for operators; clients must pin the id through a trusted channel, never learn it from here), ``GET
/v1/cluster`` (hardened mode's sealed cluster credentials, useless without the attested cluster key). Broker
work runs on a thread pool so slow appraisals and fsyncs do not block other clients.

Answers other than success carry ``{"error": reason}``: 400 for a malformed message; 413 for a body over
:data:`MAX_REQUEST` bytes (refused before it is read); 429 with ``Retry-After`` when the peer address has used
up its rate limit (:mod:`cchet.broker.ratelimit`, checked before the body is read); 503 with ``Retry-After``
when the broker's table of outstanding challenges is full (:mod:`cchet.broker.nonces`).
"""

from __future__ import annotations

import asyncio
import math
import socket
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from cchet.broker.broker import KeyBroker
from cchet.broker.ratelimit import RateLimit, RateLimiter
from cchet.errors import BrokerBusy, CchetError

__all__ = ["MAX_REQUEST", "BrokerServer", "make_app"]

MAX_REQUEST = 4 << 20
"""Bytes of a request body, at most (evidence with eight GPUs' reports and certificates is well under 1 MiB)."""


def _retry_later(reason: str, retry_after_s: float, status: int) -> web.Response:
    return web.json_response(
        {"error": reason}, status=status, headers={"Retry-After": str(max(1, math.ceil(retry_after_s)))}
    )


def make_app(broker: KeyBroker, executor: ThreadPoolExecutor, limiter: RateLimiter) -> web.Application:
    app = web.Application(client_max_size=MAX_REQUEST)

    async def step(request: web.Request) -> web.Response:
        name = request.match_info["step"]
        peer = request.remote or "an unknown address"
        wait = limiter.acquire(peer)
        if wait:
            limit = limiter.limit
            return _retry_later(
                f"too many messages from {peer}: the limit is {limit.burst} at once and {limit.per_second:g} a "
                f"second (cchet broker serve --rate-burst / --rate-limit); retry after {wait} s",
                wait,
                429,
            )
        try:
            message = await request.json()
        except ValueError:
            return web.json_response({"error": "the body is not JSON"}, status=400)
        loop = asyncio.get_running_loop()
        try:
            answer = await loop.run_in_executor(executor, getattr(broker, name), message)
        except BrokerBusy as e:
            return _retry_later(str(e), e.retry_after_s, 503)
        except CchetError as e:
            return web.json_response({"error": str(e)}, status=400)
        return web.json_response(answer)

    async def identity(request: web.Request) -> web.Response:
        return web.json_response({"broker_id": broker.broker_id.hex(), "issuer": broker.issuer})

    async def cluster(request: web.Request) -> web.Response:
        from cchet.broker.cluster import published_credentials

        published = None if broker.state_dir is None else published_credentials(broker.state_dir)
        if published is None:
            return web.json_response(
                {"error": "this broker has no cluster credentials: run 'cchet broker cluster init --state DIR'"},
                status=404,
            )
        return web.json_response(published)

    app.router.add_post("/v1/{step:challenge|release}", step)
    app.router.add_get("/v1/identity", identity)
    app.router.add_get("/v1/cluster", cluster)
    return app


class BrokerServer:
    """Serves a :class:`KeyBroker` on ``host:port`` from a daemon thread (``port=0`` picks a free port).

    ``ssl_context`` turns on TLS; ``rate_limit`` bounds the messages each peer address may send (default
    :class:`~cchet.broker.ratelimit.RateLimit`: ``RATE_PER_S`` a second, bursts of ``RATE_BURST``). Use as a
    context manager or call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        broker: KeyBroker,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ssl_context: ssl.SSLContext | None = None,
        workers: int = 8,
        rate_limit: RateLimit | None = None,
    ) -> None:
        self.broker = broker
        self.host = host
        self.port = port
        self._ssl = ssl_context
        self._limiter = RateLimiter(rate_limit)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cchet-broker")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self) -> BrokerServer:
        started = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._runner = web.AppRunner(make_app(self.broker, self._executor, self._limiter), access_log=None)
                loop.run_until_complete(self._runner.setup())
                sock = socket.create_server((self.host, self.port))
                self.port = sock.getsockname()[1]
                site = web.SockSite(self._runner, sock, ssl_context=self._ssl)
                loop.run_until_complete(site.start())
            except BaseException as e:  # reported to the starting thread
                errors.append(e)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="cchet-broker-http", daemon=True)
        self._thread.start()
        started.wait()
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._executor.shutdown(wait=False)

    def __enter__(self) -> BrokerServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
