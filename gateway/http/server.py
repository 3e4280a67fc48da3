"""Serving the application: connection-level limits and the SIGTERM drain.

aiohttp closes idle keep-alive connections (--keepalive-timeout) but has no deadline for a
request's headers, no cap on connections, and on shutdown waits up to twice its timeout and
then cuts streams mid-chunk. This module adds the first two to aiohttp's connection handler
and runs the drain itself: stop accepting, give requests --shutdown-timeout, then end every
stream still open with an error event and [DONE] (non-streamed requests get a 503) and exit.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from gateway.http.middleware import IN_FLIGHT, SHUTDOWN
from gateway.settings import Settings

log = logging.getLogger(__name__)

# What a connection past --max-connections gets before it is closed.
_TOO_MANY_CONNECTIONS = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
    b"Retry-After: 1\r\nContent-Length: 118\r\n\r\n"
    b'{"error":{"message":"The gateway has too many open connections.","type":"server_error",'
    b'"param":null,"code":"overloaded"}}'
)
# After the drain, the time cancelled requests get to write their last words.
FAREWELL_SECONDS = 1.0


class GuardedRequestHandler(RequestHandler):
    """aiohttp's connection handler, plus a deadline on each request's headers (from its
    first byte) and the server's connection cap."""

    def __init__(self, manager: GatewayServer, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = manager
        self._header_timeout = header_timeout
        self._header_timer: asyncio.TimerHandle | None = None
        self._in_request = False  # between a request's complete headers and its response

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._guard.open_connections += 1
        limit = self._guard.max_connections
        if limit is not None and self._guard.open_connections > limit:
            cast(asyncio.WriteTransport, transport).write(_TOO_MANY_CONNECTIONS)
            self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._guard.open_connections -= 1
        self._stop_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._in_request and self._header_timer is None:
            self._header_timer = self._loop.call_later(self._header_timeout, self._headers_too_slow)
        # aiohttp counts the requests whose headers it has parsed (a private counter: should a
        # release drop it, every request counts as parsed and only the deadline is lost).
        parsed = getattr(self, "_request_count", None)
        super().data_received(data)
        if parsed is None or getattr(self, "_request_count", None) != parsed:
            self._in_request = True
            self._stop_header_timer()

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> Any:
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            self._in_request = False

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self._in_request:
            log.info("closing a connection whose request headers took over %gs", self._header_timeout)
            self.force_close()

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None


class GatewayServer(web.Server):
    """aiohttp's server, making GuardedRequestHandlers."""

    def __init__(self, *args: Any, header_timeout: float, max_connections: int | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self.open_connections = 0

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(self, header_timeout=self.header_timeout, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    def __init__(self, app: web.Application, settings: Settings, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._settings = settings

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # starts the application
        return GatewayServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            loop=asyncio.get_running_loop(),
            header_timeout=self._settings.header_read_timeout,
            max_connections=self._settings.max_connections,
            **self._kwargs,
        )


async def serve(
    app: web.Application,
    settings: Settings,
    *,
    announce: Callable[[], None] | None = None,
    reuse_port: bool = False,
    access_log: logging.Logger | None = None,
) -> None:
    """Serve `app` until SIGINT or SIGTERM, then drain."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # from the start: a signal during start-up stops too
        loop.add_signal_handler(sig, stop.set)
    runner = GatewayRunner(
        app,
        settings,
        handler_cancellation=True,  # a client that disconnects cancels its Triton request
        keepalive_timeout=settings.keepalive_timeout,
        access_log=access_log,
        shutdown_timeout=FAREWELL_SECONDS,
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.openai_port, reuse_port=reuse_port or None)
    try:
        await site.start()
        if announce is not None:
            announce()
        await stop.wait()
        log.info("shutting down: no new connections; in-flight requests get %gs", settings.shutdown_timeout)
        await site.stop()
        if runner.server is not None:
            runner.server.pre_shutdown()  # idle keep-alive connections close now
        await drain(app, settings.shutdown_timeout)
    finally:
        await runner.cleanup()


async def drain(app: web.Application, timeout: float) -> None:
    """Wait up to `timeout` for the requests in flight; then end the rest, each with its
    last words (an error event and [DONE], or a 503) and its Triton request cancelled."""
    in_flight = app[IN_FLIGHT]
    pending = set(in_flight)
    if pending:
        _, pending = await asyncio.wait(pending, timeout=timeout)
    app[SHUTDOWN].draining = True
    if not pending:
        return
    log.warning("cancelling %d requests still in flight after %gs", len(pending), timeout)
    for task in pending:
        task.cancel()
    await asyncio.wait(pending, timeout=FAREWELL_SECONDS)
