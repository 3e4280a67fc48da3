from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.errors import BackendError
from gateway.generation import Delta
from gateway.openai.chat import ChatStreamFormatter
from gateway.openai.completions import CompletionStreamFormatter
from gateway.sse import DONE, ChunkFramer, error_frame, open_event_stream
from schemas.requests import StreamOptions
from schemas.responses import ChatChunkChoice, ChatCompletionChunk, ChatDelta, Usage


def parse(frame: bytes) -> dict:
    assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
    return json.loads(frame[6:-2])


def test_framed_chunk_equals_the_whole_struct_encoded() -> None:
    envelope = ChatCompletionChunk(id="chatcmpl-1", object="chat.completion.chunk", created=5, model='m"1', choices=[])
    framer = ChunkFramer(envelope)
    first = framer.frame(ChatChunkChoice(0, ChatDelta(content="héllo")))
    second = framer.frame(ChatChunkChoice(0, ChatDelta(), "stop"))
    assert parse(first) == {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 5,
        "model": 'm"1',
        "choices": [{"index": 0, "delta": {"content": "héllo"}, "finish_reason": None, "logprobs": None}],
    }
    assert parse(second)["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None}
    assert parse(first)["choices"][0]["delta"]["content"] == "héllo"  # the buffer reuse left `first` intact


async def test_chat_formatter_opening_and_usage() -> None:
    formatter = ChatStreamFormatter("chatcmpl-1", 5, "m", StreamOptions(include_usage=True))
    assert not formatter.running_usage
    assert parse(formatter.opening(0))["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert parse(formatter.opening(2))["choices"][0]["index"] == 2
    closing = await formatter.closing(Usage(1, 2, 3))
    assert closing.endswith(DONE)
    usage = parse(closing.removesuffix(DONE))
    assert usage["choices"] == [] and usage["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    assert await ChatStreamFormatter("chatcmpl-1", 5, "m", None).closing(Usage(1, 2, 3)) == DONE
    assert ChatStreamFormatter("c", 5, "m", StreamOptions(True, continuous_usage_stats=True)).running_usage
    failed = formatter.failure(BackendError("no", code="x"))
    assert failed.endswith(DONE) and parse(failed.removesuffix(DONE))["error"]["code"] == "x"
    assert "usage" not in parse(formatter.chunk(0, Delta("x")))
    with_usage = parse(formatter.chunk(1, Delta("x"), Usage(1, 1, 2)))
    assert with_usage["usage"]["total_tokens"] == 2 and with_usage["choices"][0]["index"] == 1


def test_completion_formatter() -> None:
    formatter = CompletionStreamFormatter("cmpl-1", 5, "m", None, None)
    assert formatter.opening(0) is None
    echoing = CompletionStreamFormatter("cmpl-1", 5, "m", ["Say", "Ask"], None)
    assert parse(echoing.opening(1))["choices"][0] == {
        "index": 1,
        "text": "Ask",
        "finish_reason": None,
        "logprobs": None,
    }
    chunk = parse(formatter.chunk(0, Delta("abc", "length")))
    assert chunk["object"] == "text_completion"
    assert chunk["choices"] == [{"index": 0, "text": "abc", "finish_reason": "length", "logprobs": None}]


def test_error_frame() -> None:
    assert parse(error_frame(BackendError("boom")))["error"]["message"] == "boom"


async def test_an_event_stream_sends_its_headers_with_its_first_frames_and_its_end_with_its_last(
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient]],
) -> None:
    """Two frames, two sends: the headers go out with the first, the body's end with the last
    (a response that sent its headers at once, and its end on its own, took four)."""
    sends: list[bytes] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        transport = request.transport
        assert transport is not None
        write, writelines = transport.write, transport.writelines

        def counted_write(data: bytes) -> None:
            sends.append(bytes(data))
            write(data)

        def counted_writelines(chunks: list[bytes]) -> None:
            sends.append(b"".join(chunks))
            writelines(chunks)

        transport.write = counted_write  # type: ignore[method-assign]
        transport.writelines = counted_writelines  # type: ignore[method-assign]
        response = await open_event_stream(request)
        await response.write(b"data: 1\n\n")
        await response.write_eof(b"data: 2\n\n" + DONE)
        return response

    app = web.Application()
    app.router.add_get("/", handler)
    client = await aiohttp_client(app)
    reply = await client.get("/")
    assert reply.headers["Content-Type"] == "text/event-stream"
    assert await reply.read() == b"data: 1\n\ndata: 2\n\n" + DONE
    assert len(sends) == 2
    assert sends[0].startswith(b"HTTP/1.1 200") and sends[0].endswith(b"data: 1\n\n\r\n")
    assert sends[1].endswith(b"[DONE]\n\n\r\n0\r\n\r\n")
