"""The stall watch: a stream is cancelled only when its send buffer stays full for the whole
timeout (a slow reader that keeps draining it is left alone)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from gateway.http.stall import StallWatch

HIGH_WATER = 64 * 1024


class FakeTransport(asyncio.WriteTransport):
    """A send buffer whose fill the test decides: each look at it takes the next size."""

    def __init__(self, sizes: Iterator[int]) -> None:
        super().__init__()
        self._sizes = sizes
        self.looks = 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return HIGH_WATER // 4, HIGH_WATER

    def get_write_buffer_size(self) -> int:
        self.looks += 1
        return next(self._sizes)

    def is_closing(self) -> bool:
        return False


def forever(*sizes: int) -> Iterator[int]:
    while True:
        yield from sizes


async def watched(transport: FakeTransport, looks: int) -> tuple[bool, bool]:
    """(stalled, cancelled) for a task that waits while the watch looks `looks` times."""

    async def stream() -> bool:
        watch = StallWatch(transport, timeout=0.2)
        try:
            while transport.looks < looks:
                await asyncio.sleep(0.01)
            return watch.stalled
        except asyncio.CancelledError:
            return watch.stalled
        finally:
            watch.close()

    task = asyncio.create_task(stream())
    stalled = await asyncio.wait_for(task, 30)
    return stalled, task.cancelled()


async def test_a_buffer_that_stays_full_cancels_the_stream() -> None:
    transport = FakeTransport(forever(HIGH_WATER + 1))
    stalled, _ = await watched(transport, looks=1_000_000)  # ends only by the watch's cancellation
    assert stalled
    assert transport.looks >= 5  # full at the first look, then still full a whole timeout later


async def test_a_buffer_that_drains_between_looks_is_left_alone() -> None:
    transport = FakeTransport(forever(HIGH_WATER + 1, HIGH_WATER + 1, 0))  # full, full, drained, …
    stalled, cancelled = await watched(transport, looks=12)  # three timeouts' worth of looks
    assert not stalled and not cancelled


async def test_no_transport_no_watch() -> None:
    watch = StallWatch(None, timeout=0.2)
    await asyncio.sleep(0.3)
    assert not watch.stalled
    watch.close()
