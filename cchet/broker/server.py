"""The broker over HTTP: an aiohttp application, run in a background thread or as ``cchet broker serve``.

Routes: ``POST /v1/challenge`` and ``POST /v1/release`` (the protocol), ``GET /v1/identity`` (the broker
id, for operators; clients must pin the id through a trusted channel, never learn it from here), ``GET
/v1/cluster`` (hardened mode's sealed cluster credentials, useless without the attested cluster key). Broker
work runs on a thread pool so slow appraisals and fsyncs do not block other clients. Malformed messages get
HTTP 400 with ``{"error": reason}``; request bodies over 4 MiB are refused.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from cchet.broker.broker import KeyBroker
from cchet.broker.messages import ProtocolError
from cchet.errors import CchetError

__all__ = ["BrokerServer", "make_app"]

MAX_BODY = 4 << 20


def make_app(broker: KeyBroker, executor: ThreadPoolExecutor) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)

    async def step(request: web.Request) -> web.Response:
        name = request.match_info["step"]
        try:
            message = await request.json()
        except ValueError:
            return web.json_response({"error": "the body is not JSON"}, status=400)
        loop = asyncio.get_running_loop()
        try:
            answer = await loop.run_in_executor(executor, getattr(broker, name), message)
        except (ProtocolError, CchetError) as e:
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

    ``ssl_context`` turns on TLS. Use as a context manager or call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        broker: KeyBroker,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ssl_context: ssl.SSLContext | None = None,
        workers: int = 8,
    ) -> None:
        self.broker = broker
        self.host = host
        self.port = port
        self._ssl = ssl_context
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
                self._runner = web.AppRunner(make_app(self.broker, self._executor), access_log=None)
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
