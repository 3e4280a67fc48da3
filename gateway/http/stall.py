"""Streams whose client stopped reading.

aiohttp's write() waits for the socket to drain once its buffer is full, so a client that
stops reading stalls its stream (and, through gRPC flow control, its Triton request) but is
not buffered without bound. Left alone, such streams pile up and hold Triton's memory: past
--stream-stall-timeout the stream is cancelled (its Triton request too) and its connection
dropped.

The watch looks at the connection, not at each write: a stream is stalled when the
transport's send buffer has stayed above its high-water mark (where writing pauses) for the
whole timeout. One check per stream every quarter of the timeout, and nothing per token.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


class StallWatch:
    __slots__ = ("_check", "_full_since", "_high_water", "_loop", "_task", "_timeout", "_transport", "stalled")

    def __init__(self, transport: asyncio.WriteTransport | None, timeout: float) -> None:
        self._transport = transport
        self._timeout = timeout
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._high_water = transport.get_write_buffer_limits()[1] if transport is not None else 0
        self._full_since: float | None = None
        self.stalled = False
        self._check: asyncio.TimerHandle | None = None
        if transport is not None:
            self._check = self._loop.call_later(timeout / 4, self._look)

    def close(self) -> None:
        if self._check is not None:
            self._check.cancel()
            self._check = None

    def _look(self) -> None:
        assert self._transport is not None
        now = self._loop.time()
        if self._transport.is_closing() or self._transport.get_write_buffer_size() <= self._high_water:
            self._full_since = None
        elif self._full_since is None:
            self._full_since = now
        elif now - self._full_since >= self._timeout and self._task is not None:
            log.warning("a client stopped reading its stream for %gs: cancelling it", self._timeout)
            self.stalled = True
            self._check = None
            self._task.cancel()
            return
        self._check = self._loop.call_later(self._timeout / 4, self._look)
