"""The bench's streaming load generator: HTTP/1.1 keep-alive connections that post a chat
completion and count its token frames as they arrive, in a protocol callback.

It shares the machine with what it measures, so it spends as little as it can: no task wake-up,
future or line split per chunk (aiohttp's client spends 85-95 µs per chunk here; this about half
of that). It speaks only what the gateway answers with: a chunked response, read to
its last chunk.
"""

from __future__ import annotations

import asyncio
import time
from typing import cast
from urllib.parse import urlsplit

from tests.benchmarks.load import Timing


class TokenFrames:
    """Counts the token-carrying frames of a chat completion stream as its body arrives, in
    pieces cut anywhere; keeps the first error frame."""

    def __init__(self) -> None:
        self._partial = b""
        self.error: str | None = None

    def feed(self, data: bytes) -> int:
        """The token frames that `data` completes."""
        frames = (self._partial + data).split(b"\n\n")
        self._partial = frames.pop()
        tokens = 0
        for frame in frames:
            if frame.startswith(b'data: {"id"') and b'"content":"' in frame and b'"content":""' not in frame:
                tokens += 1
            elif frame.startswith(b'data: {"error"') and self.error is None:
                self.error = frame.decode()
        return tokens


class ChunkedBody:
    """Takes a chunked body as it arrives, hands each chunk's data on; `done` after the last chunk."""

    def __init__(self, frames: TokenFrames) -> None:
        self._frames = frames
        self._pending = b""
        self._left = 0  # bytes of the current chunk's data still to come
        self._crlf = False  # a chunk's data ended: its CRLF is next
        self._trailer = False  # the last chunk came: trailer lines up to an empty one
        self.done = False

    def feed(self, data: bytes) -> int:
        """The token frames `data` completes."""
        buffer, at, tokens = self._pending + data, 0, 0
        while not self.done:
            if self._left:
                piece = buffer[at : at + self._left]
                tokens += self._frames.feed(piece)
                self._left -= len(piece)
                at += len(piece)
                if self._left:
                    break
                self._crlf = True
            end = buffer.find(b"\r\n", at)
            if end < 0:
                break
            if self._crlf:
                self._crlf = False
            elif self._trailer:
                self.done = end == at
            else:
                self._left = int(buffer[at:end].split(b";", 1)[0], 16)
                self._trailer = not self._left
            at = end + 2
        self._pending = buffer[at:]
        return tokens


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request on it at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self._timing: Timing | None = None
        self._ended: asyncio.Future[None] | None = None
        self._head = b""
        self._frames = TokenFrames()
        self._body: ChunkedBody | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it

    def connection_lost(self, exc: Exception | None) -> None:
        if self._ended is not None and not self._ended.done():
            self._ended.set_exception(ConnectionError(f"connection lost: {exc!r}"))
        if not self.closed.done():
            self.closed.set_result(None)

    async def post(self, request: bytes, timing: Timing) -> None:
        assert self.transport is not None
        self._timing, self._head, self._body = timing, b"", None
        self._frames = TokenFrames()
        self._ended = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        await self._ended
        if self._frames.error is not None and timing.error is None:
            timing.error = self._frames.error

    def data_received(self, data: bytes) -> None:
        timing, ended = self._timing, self._ended
        if timing is None or ended is None or ended.done():
            return
        if self._body is None:
            head = self._head + data
            end = head.find(b"\r\n\r\n")
            if end < 0:
                self._head = head
                return
            status = head[: head.find(b"\r\n")].split(b" ", 2)
            if len(status) < 2 or status[1] != b"200":
                timing.error = f"HTTP {status[1].decode() if len(status) > 1 else '?'}"
            if b"transfer-encoding: chunked" not in head[:end].lower():
                ended.set_exception(ConnectionError("the response is not chunked"))
                return
            self._body = ChunkedBody(self._frames)
            data = head[end + 4 :]
        tokens = self._body.feed(data)
        if tokens:
            now = time.perf_counter()
            timing.token_times.extend([now] * tokens)
            timing.tokens += tokens
        if self._body.done:
            ended.set_result(None)


class StreamClient:
    """Streamed chat completions over up to `connections` keep-alive connections."""

    def __init__(self, base_url: str, body: bytes, connections: int) -> None:
        url = urlsplit(base_url)
        self._host, self._port = url.hostname or "127.0.0.1", url.port or 80
        self._request = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        self._idle: list[_Connection] = []
        self._all: list[_Connection] = []
        self._limit = connections

    async def one(self) -> Timing:
        timing = Timing(start=time.perf_counter())
        connection = None
        try:
            connection = self._idle_connection() or await self._connect()
            await connection.post(self._request, timing)
            self._idle.append(connection)
        except Exception as exc:  # noqa: BLE001 - counted, not raised
            timing.error = timing.error or repr(exc)
            if connection is not None:
                self._drop(connection)
        timing.end = time.perf_counter()
        return timing

    def _idle_connection(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed.done():
                return connection
            self._drop(connection)  # the server closed it while idle
        return None

    def _drop(self, connection: _Connection) -> None:
        if connection.transport is not None:
            connection.transport.close()
        if connection in self._all:
            self._all.remove(connection)

    async def _connect(self) -> _Connection:
        if len(self._all) >= self._limit:
            raise RuntimeError("more requests at once than connections")
        _, connection = await asyncio.get_running_loop().create_connection(_Connection, self._host, self._port)
        self._all.append(connection)
        return connection

    async def close(self) -> None:
        connections, self._all, self._idle = self._all, [], []
        for connection in connections:
            if connection.transport is not None:
                connection.transport.close()
        await asyncio.gather(*(connection.closed for connection in connections))
