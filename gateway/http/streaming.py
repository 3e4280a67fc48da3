"""Serving a request's deltas as server-sent events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from aiohttp import web

from gateway.backends.base import Delta
from gateway.errors import APIError, BadGateway
from gateway.sse import DONE, error_frame, open_event_stream
from gateway.usage import UsageTracker
from schemas.responses import Usage

log = logging.getLogger(__name__)


class StreamFormatter(Protocol):
    """How one API (chat or text completions) frames its chunks."""

    def opening(self) -> bytes | None: ...

    def chunk(self, text: str, finish_reason: str | None, usage: Usage | None = None) -> bytes: ...

    def usage_chunk(self, usage: Usage | None) -> bytes: ...


UsageResolver = Callable[[UsageTracker, str], Usage | None]


async def _next_delta(deltas: AsyncIterator[Delta]) -> Delta:
    try:
        return await anext(deltas)
    except StopAsyncIteration:
        raise BadGateway("The model's stream ended without a final response.") from None


async def serve_stream(
    request: web.Request,
    deltas: AsyncIterator[Delta],
    formatter: StreamFormatter,
    *,
    include_usage: bool,
    resolve_usage: UsageResolver,
    continuous_usage: bool = False,
    check_output: Callable[[str], None] | None = None,
) -> web.StreamResponse:
    """Stream `deltas` as SSE. An error before the first delta is an ordinary JSON error
    response (the status still means something then); later errors become an error event
    followed by [DONE]. Leaving early (client gone) closes `deltas`, which cancels the
    request on Triton. `continuous_usage` puts the usage so far on every chunk;
    `check_output` judges the whole text at the end (strict structured outputs)."""
    async with contextlib.aclosing(deltas):  # type: ignore[type-var]
        delta = await _next_delta(deltas)
        response = await open_event_stream(request)
        write = response.write
        opening = formatter.opening()
        if opening is not None:
            await write(opening)
        tracker = UsageTracker()
        parts: list[str] = []
        try:
            while True:
                tracker.add(delta)
                if delta.text:
                    parts.append(delta.text)
                if delta.text or delta.finish_reason is not None:
                    usage = resolve_usage(tracker, "".join(parts)) if continuous_usage else None
                    await write(formatter.chunk(delta.text, delta.finish_reason, usage))
                if delta.finish_reason is not None:
                    break
                delta = await _next_delta(deltas)
            if check_output is not None:
                check_output("".join(parts))
            if include_usage:
                await write(formatter.usage_chunk(resolve_usage(tracker, "".join(parts))))
        except APIError as error:
            log.warning("stream of %s failed midway: %s", request.path, error.message)
            await write(error_frame(error))
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("stream of %s failed midway", request.path)
            await write(error_frame(APIError("The gateway failed while streaming.", code="internal_error")))
        await write(DONE)
    return response
