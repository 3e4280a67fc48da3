"""Serving the application: connection-level limits and the SIGTERM drain.

aiohttp closes idle keep-alive connections (--keepalive-timeout) but has no deadline for a
request's headers, no cap on connections, and on shutdown waits up to twice its timeout and
then cuts streams mid-chunk. This module adds the first two around aiohttp's connection
protocol (through public interfaces only) and runs the drain itself: stop accepting, give requests --shutdown-timeout, then end every
stream still open with an error event and [DONE] (non-streamed requests get a 503) and exit.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import cast

from aiohttp import web

from gateway.errors import StartupError
from gateway.http.middleware import CONNECTIONS, IN_FLIGHT, SHUTDOWN
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


class GuardedConnection(asyncio.Protocol):
    """One client connection: aiohttp's protocol inside, plus the header deadline (from a
    request's first byte until the application sees the request) and the connection cap."""

    def __init__(self, guard: ConnectionGuard, inner: web.RequestHandler) -> None:
        self._guard = guard
        self._inner = inner  # aiohttp's RequestHandler
        self._header_timer: asyncio.TimerHandle | None = None
        self.in_request = False  # from a request's complete headers to the end of its handling

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._guard.opened()
        self._inner.connection_made(transport)
        limit = self._guard.max_connections
        if limit is not None and self._guard.open_connections > limit:
            cast(asyncio.WriteTransport, transport).write(_TOO_MANY_CONNECTIONS)
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard.closed(self._inner)
        self.stop_header_timer()
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self.in_request and self._header_timer is None:
            loop = asyncio.get_running_loop()
            self._header_timer = loop.call_later(self._guard.header_timeout, self._headers_too_slow)
        self._inner.data_received(data)

    def eof_received(self) -> None:
        self._inner.eof_received()  # None: the transport closes itself

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.in_request:
            log.info("closing a connection whose request headers took over %gs", self._guard.header_timeout)
            self._inner.force_close()


class ConnectionGuard:
    """The protocol factory the listening socket uses: wraps each connection of aiohttp's
    server (`runner.server`, set once the runner is set up) in a GuardedConnection. The first
    middleware tells it when a request's headers are complete (`request_started`) and when the
    request is handled (`request_finished`)."""

    def __init__(self, header_timeout: float, max_connections: int | None) -> None:
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self.protocol_factory: Callable[[], web.RequestHandler] | None = None
        self.open_connections = 0
        self._by_protocol: dict[int, GuardedConnection] = {}  # id(aiohttp's protocol) -> its guard

    def __call__(self) -> GuardedConnection:
        assert self.protocol_factory is not None, "set protocol_factory to the runner's server first"
        inner = self.protocol_factory()
        connection = GuardedConnection(self, inner)
        self._by_protocol[id(inner)] = connection
        return connection

    def opened(self) -> None:
        self.open_connections += 1

    def closed(self, inner: web.RequestHandler) -> None:
        self.open_connections -= 1
        self._by_protocol.pop(id(inner), None)

    def request_started(self, request: web.BaseRequest) -> None:
        connection = self._by_protocol.get(id(request.protocol))
        if connection is not None:
            connection.in_request = True
            connection.stop_header_timer()

    def request_finished(self, request: web.BaseRequest) -> None:
        connection = self._by_protocol.get(id(request.protocol))
        if connection is not None:
            connection.in_request = False


async def serve(
    app: web.Application,
    settings: Settings,
    *,
    announce: Callable[[], None] | None = None,
    reuse_port: bool = False,
) -> None:
    """Serve `app` until SIGINT or SIGTERM, then drain."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # from the start: a signal during start-up stops too
        loop.add_signal_handler(sig, stop.set)
    guard = app[CONNECTIONS] = ConnectionGuard(settings.header_read_timeout, settings.max_connections)
    runner = web.AppRunner(
        app,
        handler_cancellation=True,  # a client that disconnects cancels its Triton request
        keepalive_timeout=settings.keepalive_timeout,
        access_log=None,  # the gateway writes its own access lines (gateway.access), with the request id
        shutdown_timeout=FAREWELL_SECONDS,
        # Bodies stay as sent: compressed ones are refused unread, or forwarded to Triton as
        # they came (gateway.http.middleware.body_refusal), never inflated on the loop.
        auto_decompress=False,
    )
    listening: asyncio.Server | None = None
    try:
        await runner.setup()
        guard.protocol_factory = runner.server
        try:
            listening = await loop.create_server(
                guard, settings.host, settings.openai_port, backlog=settings.backlog, reuse_port=reuse_port or None
            )
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {settings.host}:{settings.openai_port} ({exc.strerror or exc}); "
                "if another process has the port, choose another with --openai-port"
            ) from None
        if announce is not None:
            announce()
        await stop.wait()
        log.info("shutting down: no new connections; in-flight requests get %gs", settings.shutdown_timeout)
        listening.close()
        if runner.server is not None:
            runner.server.pre_shutdown()  # idle keep-alive connections close now
        await drain(app, settings.shutdown_timeout)
    finally:
        if listening is not None:
            listening.close()
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
