"""POST /v1/chat/completions"""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec
from aiohttp import web

from gateway.errors import InvalidRequest
from gateway.http.body import decode_body
from gateway.http.sampling import check_common, generation_request, unsupported
from gateway.http.state import state_of
from gateway.http.streaming import serve_stream
from gateway.sse import ChunkFramer, frame
from gateway.usage import UsageTracker
from schemas.requests import ChatCompletionRequest, ChatMessage, TextPart
from schemas.responses import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatDelta,
    Usage,
)

_DECODER = msgspec.json.Decoder(ChatCompletionRequest)
_ENCODER = msgspec.json.Encoder()
_CHUNK = "chat.completion.chunk"

# Roles the chat templates know; "developer" (OpenAI's newer name) is a system turn.
_TEMPLATE_ROLES = {"developer": "system"}


def template_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """The messages as chat templates expect them: string content, known roles."""
    rendered = []
    for i, message in enumerate(messages):
        if message.role == "function":
            raise unsupported(f"messages[{i}].role", "The deprecated 'function' role")
        content = message.content
        if isinstance(content, list):
            texts = []
            for j, part in enumerate(content):
                if not isinstance(part, TextPart):
                    kind = type(part).__struct_config__.tag
                    raise unsupported(f"messages[{i}].content[{j}]", f"A content part of type '{kind}'")
                texts.append(part.text)
            content = "\n".join(texts)
        if content is None and message.role != "assistant":
            raise InvalidRequest(f"messages[{i}] ({message.role}) needs content.", param=f"messages[{i}].content")
        entry: dict[str, Any] = {"role": _TEMPLATE_ROLES.get(message.role, message.role), "content": content or ""}
        if message.name is not None:
            entry["name"] = message.name
        if message.tool_calls:
            raise unsupported(f"messages[{i}].tool_calls", "Tool calls in the conversation")
        if message.tool_call_id is not None:
            entry["tool_call_id"] = message.tool_call_id
        rendered.append(entry)
    return rendered


def check_chat(body: ChatCompletionRequest) -> None:
    check_common(body)
    if body.logprobs:
        raise unsupported("logprobs", "logprobs")
    if body.top_logprobs is not None:
        raise unsupported("top_logprobs", "top_logprobs")
    if body.tools:
        raise unsupported("tools", "Tool calling")
    if body.tool_choice not in (None, "none", "auto"):
        raise unsupported("tool_choice", "tool_choice without tools")
    if body.response_format is not None and body.response_format.get("type", "text") != "text":
        raise unsupported("response_format", f"response_format of type '{body.response_format.get('type')}'")


class ChatStreamFormatter:
    def __init__(self, request_id: str, created: int, model: str) -> None:
        self._envelope = ChatCompletionChunk(id=request_id, object=_CHUNK, created=created, model=model, choices=[])
        self._framer = ChunkFramer(self._envelope)

    def opening(self) -> bytes:
        return self._framer.frame(ChatChunkChoice(0, ChatDelta(role="assistant", content="")))

    def chunk(self, text: str, finish_reason: str | None) -> bytes:
        delta = ChatDelta(content=text) if text else ChatDelta()
        return self._framer.frame(ChatChunkChoice(0, delta, finish_reason))

    def usage_chunk(self, usage: Usage | None) -> bytes:
        envelope = self._envelope
        return frame(msgspec.structs.replace(envelope, usage=usage))


async def create_chat_completion(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    body = await decode_body(request, _DECODER)
    check_chat(body)
    messages = template_messages(body.messages)
    model = await state.registry.resolve(body.model)
    prompt = state.tokenizers.render_chat(model.name, messages)
    request_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    max_tokens = body.max_completion_tokens or body.max_tokens or state.settings.default_max_tokens
    generation = generation_request(body, request_id=request_id, prompt=prompt, max_tokens=max_tokens)

    tokenizer = state.tokenizers.tools(model.name)

    def resolve_usage(tracker: UsageTracker, completion: str) -> Usage | None:
        return tracker.usage(prompt, completion, tokenizer)

    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        return await serve_stream(
            request,
            state.engine.stream(model, generation, tokenizer),
            ChatStreamFormatter(request_id, created, body.model),
            include_usage=include_usage,
            resolve_usage=resolve_usage,
        )

    result = await state.engine.generate(model, generation, tokenizer)
    tracker = UsageTracker()
    tracker.prompt_tokens, tracker.completion_tokens = result.prompt_tokens, result.completion_tokens
    completion = ChatCompletion(
        id=request_id,
        created=created,
        model=body.model,
        choices=[ChatChoice(0, AssistantMessage(content=result.text), result.finish_reason)],
        usage=resolve_usage(tracker, result.text),
    )
    return web.Response(body=_ENCODER.encode(completion), content_type="application/json")
