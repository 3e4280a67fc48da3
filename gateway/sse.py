"""Server-sent-event framing of stream chunks.

A stream's chunks differ only in their `choices`, so the envelope (id, object, created,
model) is encoded once; each chunk then encodes just its choice into a reused buffer.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from gateway.errors import APIError
from schemas.requests import StreamOptions

DONE = b"data: [DONE]\n\n"
_ENCODER = msgspec.json.Encoder()
_CHOICES_MARK = b'"choices":[]'


def frame(payload: Any) -> bytes:
    """`data: <json>` for any Struct."""
    return b"data: " + _ENCODER.encode(payload) + b"\n\n"


def error_frame(error: APIError) -> bytes:
    """The event that ends a stream that failed midway (followed by [DONE])."""
    return b"data: " + error.to_json() + b"\n\n"


class ChunkStream:
    """What chat and text completion streams share: the envelope framed once, usage on every
    chunk or at the end as the stream options ask, and [DONE] last (after an error event when
    the stream failed)."""

    def __init__(self, envelope: msgspec.Struct, options: StreamOptions | None) -> None:
        self._framer = ChunkFramer(envelope)
        self._include_usage = options is not None and options.include_usage
        self.running_usage = self._include_usage and options is not None and options.continuous_usage_stats

    async def closing(self, usage: msgspec.Struct | None) -> bytes:
        return (self._framer.usage_frame(usage) if self._include_usage else b"") + DONE

    def failure(self, error: APIError) -> bytes:
        return error_frame(error) + DONE


class ChunkFramer:
    """Frames the chunks of one stream: `data: {envelope, "choices":[<choice>]}`."""

    __slots__ = ("_buffer", "_envelope", "_prefix_length", "_suffix")

    def __init__(self, envelope: msgspec.Struct) -> None:
        self._envelope = envelope
        encoded = _ENCODER.encode(envelope)  # the envelope with "choices":[]
        cut = encoded.index(_CHOICES_MARK) + len(_CHOICES_MARK) - 1
        prefix = b"data: " + encoded[:cut]
        self._suffix = encoded[cut:] + b"\n\n"
        self._prefix_length = len(prefix)
        self._buffer = bytearray(prefix)

    def frame(self, choice: msgspec.Struct, usage: msgspec.Struct | None = None) -> bytes:
        """The chunk of `choice`; with `usage` (continuous usage stats) encoded whole."""
        if usage is not None:
            return frame(msgspec.structs.replace(self._envelope, choices=[choice], usage=usage))
        buffer = self._buffer
        _ENCODER.encode_into(choice, buffer, self._prefix_length)
        buffer += self._suffix
        # A copy: the transport may keep a view of what it could not send at once.
        return bytes(buffer)

    def usage_frame(self, usage: msgspec.Struct | None) -> bytes:
        """The chunk with no choices that carries the stream's usage."""
        return frame(msgspec.structs.replace(self._envelope, usage=usage))


class EventStreamResponse(web.StreamResponse):
    """A stream whose status line and headers leave with its first frames, in one write: one
    send and one TCP segment fewer per stream (aiohttp's plain responses buffer them alike;
    an aiohttp without the attribute sends them at once, as before)."""

    _send_headers_immediately = False


async def open_event_stream(request: web.Request) -> web.StreamResponse:
    """The event stream's response, prepared; its headers go out with the first write (an
    empty one sends just them)."""
    response = EventStreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # tell nginx-style proxies not to buffer
        }
    )
    await response.prepare(request)
    return response
