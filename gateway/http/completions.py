"""POST /v1/completions"""

from __future__ import annotations

import time
import uuid

import msgspec
from aiohttp import web

from gateway.http.body import decode_body
from gateway.http.sampling import check_common, generation_request, unsupported
from gateway.http.state import state_of
from gateway.http.streaming import serve_stream
from gateway.sse import ChunkFramer, frame
from gateway.structured import StructuredOutput
from gateway.usage import UsageTracker
from schemas.requests import CompletionRequest
from schemas.responses import Completion, CompletionChoice, CompletionChunk, Usage

_DECODER = msgspec.json.Decoder(CompletionRequest)
_ENCODER = msgspec.json.Encoder()
_OBJECT = "text_completion"


def single_prompt(body: CompletionRequest) -> str:
    prompt = body.prompt
    if isinstance(prompt, str):
        return prompt
    if prompt and all(isinstance(item, str) for item in prompt):
        if len(prompt) == 1:
            return str(prompt[0])
        raise unsupported("prompt", "More than one prompt per request")
    if not prompt:
        raise unsupported("prompt", "An empty prompt list")
    raise unsupported("prompt", "A prompt of token ids")


def check_completion(body: CompletionRequest) -> None:
    check_common(body)
    if body.echo:
        raise unsupported("echo", "echo")
    if body.suffix is not None:
        raise unsupported("suffix", "suffix")
    if body.best_of is not None and body.best_of != 1:
        raise unsupported("best_of", "best_of other than 1")
    if body.logprobs is not None:
        raise unsupported("logprobs", "logprobs")


class CompletionStreamFormatter:
    def __init__(self, request_id: str, created: int, model: str) -> None:
        self._envelope = CompletionChunk(id=request_id, object=_OBJECT, created=created, model=model, choices=[])
        self._framer = ChunkFramer(self._envelope)

    def opening(self) -> None:
        return None

    def chunk(self, text: str, finish_reason: str | None, usage: Usage | None = None) -> bytes:
        choice = CompletionChoice(0, text, finish_reason)
        if usage is not None:
            return frame(msgspec.structs.replace(self._envelope, choices=[choice], usage=usage))
        return self._framer.frame(choice)

    def usage_chunk(self, usage: Usage | None) -> bytes:
        return frame(msgspec.structs.replace(self._envelope, usage=usage))


async def create_completion(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    body = await decode_body(request, _DECODER)
    check_completion(body)
    prompt = single_prompt(body)
    structured = StructuredOutput(body.response_format)
    model = await state.registry.resolve(body.model)
    tokenizer = state.tokenizers.tools(model.name)
    request_id = f"cmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    max_tokens = body.max_tokens or state.settings.default_max_tokens
    generation = generation_request(
        body,
        request_id=request_id,
        prompt=prompt,
        max_tokens=max_tokens,
        guided=structured.guided,
        vocab_size=tokenizer.vocab_size() if tokenizer else None,
    )

    def resolve_usage(tracker: UsageTracker, completion: str) -> Usage | None:
        return tracker.usage(prompt, completion, tokenizer)

    if body.stream:
        options = body.stream_options
        return await serve_stream(
            request,
            state.engine.stream(model, generation, tokenizer),
            CompletionStreamFormatter(request_id, created, body.model),
            include_usage=options is not None and options.include_usage,
            continuous_usage=options is not None and options.include_usage and options.continuous_usage_stats,
            resolve_usage=resolve_usage,
            check_output=structured.check_output if structured.checks_output else None,
        )

    result = await state.engine.generate(model, generation, tokenizer)
    structured.check_output(result.text)
    tracker = UsageTracker()
    tracker.prompt_tokens, tracker.completion_tokens = result.prompt_tokens, result.completion_tokens
    completion = Completion(
        id=request_id,
        created=created,
        model=body.model,
        choices=[CompletionChoice(0, result.text, result.finish_reason)],
        usage=resolve_usage(tracker, result.text),
    )
    return web.Response(body=_ENCODER.encode(completion), content_type="application/json")
