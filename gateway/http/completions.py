"""POST /v1/completions: decode, plan, run through the engine, write."""

from __future__ import annotations

import msgspec
from aiohttp import web

from gateway import tracing
from gateway.http.body import decode_body, json_response
from gateway.http.middleware import MODEL_NAME, REQUEST_ID
from gateway.http.state import conversation_key, state_of
from gateway.http.streaming import generate_choices, serve_stream, stream_choices
from gateway.openai.completions import completion_response, plan_completion
from schemas.requests import CompletionRequest

_DECODER = msgspec.json.Decoder(CompletionRequest)


async def create_completion(request: web.Request) -> web.StreamResponse:
    body = await decode_body(request, _DECODER)
    with tracing.child_span("plan"):
        plan = await plan_completion(body, state_of(request), request[REQUEST_ID], conversation_key(request))
    request[MODEL_NAME] = plan.model.name
    if plan.stream:
        return await serve_stream(
            request,
            plan.choices,
            stream_choices(request, plan.choices, plan.model, plan.tokenizer, plan.stages),
            plan.formatter(),
            tokenizer=plan.tokenizer,
            structured=plan.structured,
        )
    usage = await generate_choices(request, plan.choices, plan.model, plan.tokenizer, plan.structured, plan.stages)
    return json_response(completion_response(plan, usage))
