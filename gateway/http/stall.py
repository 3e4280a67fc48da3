"""Streams whose client stopped reading.

aiohttp's write() waits for the socket to drain once its buffer is full, so a client that
stops reading stalls its stream (and, through gRPC flow control, its Triton request) but is
not buffered without bound. Left alone, such streams pile up and hold Triton's memory: past
--stream-stall-timeout the stream is cancelled (its Triton request too) and its connection
dropped. One check per stream every quarter of the timeout, not a timer per write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class StallWatch:
    __slots__ = ("_check", "_loop", "_task", "_timeout", "_waiting_since", "_write", "stalled")

    def __init__(self, write: Callable[[bytes], Awaitable[None]], timeout: float) -> None:
        self._write = write
        self._timeout = timeout
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._waiting_since: float | None = None
        self.stalled = False
        self._check: asyncio.TimerHandle | None = self._loop.call_later(timeout / 4, self._look)

    async def write(self, data: bytes) -> None:
        self._waiting_since = self._loop.time()
        await self._write(data)
        self._waiting_since = None

    def close(self) -> None:
        if self._check is not None:
            self._check.cancel()
            self._check = None

    def _look(self) -> None:
        since = self._waiting_since
        if since is not None and self._loop.time() - since >= self._timeout and self._task is not None:
            log.warning("a client stopped reading its stream for %gs: cancelling it", self._timeout)
            self.stalled = True
            self._check = None
            self._task.cancel()
            return
        self._check = self._loop.call_later(self._timeout / 4, self._look)
