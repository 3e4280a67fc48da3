"""POST /v1/chat/completions: decode, plan, run through the engine, write."""

from __future__ import annotations

import msgspec
from aiohttp import web

from gateway import tracing
from gateway.http.body import decode_body, json_response
from gateway.http.middleware import MODEL_NAME, REQUEST_ID
from gateway.http.state import conversation_key, state_of
from gateway.http.streaming import generate_choices, serve_stream, stream_choices
from gateway.openai.chat import chat_completion, plan_chat
from schemas.requests import ChatCompletionRequest

_DECODER = msgspec.json.Decoder(ChatCompletionRequest)


async def create_chat_completion(request: web.Request) -> web.StreamResponse:
    body = await decode_body(request, _DECODER)
    # Triton's request id is the X-Request-Id, so Triton's log and the gateway's agree.
    with tracing.child_span("plan"):  # the model resolved, the prompt rendered
        plan = await plan_chat(body, state_of(request), request[REQUEST_ID], conversation_key(request))
    request[MODEL_NAME] = plan.model.name
    if plan.stream:
        deltas = stream_choices(request, plan.choices, plan.model, plan.tokenizer, plan.stages)
        return await serve_stream(
            request,
            plan.choices,
            deltas,
            plan.formatter(),
            tokenizer=plan.tokenizer,
            structured=plan.structured,
        )
    usage = await generate_choices(request, plan.choices, plan.model, plan.tokenizer, plan.structured, plan.stages)
    return json_response(chat_completion(plan, usage))
