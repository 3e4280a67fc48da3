"""POST /v1/embeddings: decode, plan, embed within the deadline, write."""

from __future__ import annotations

import msgspec
from aiohttp import web

from gateway.http.body import decode_body, json_response
from gateway.http.middleware import MODEL_NAME, REQUEST_ID, within_deadline
from gateway.http.state import state_of
from gateway.openai.embeddings import embed_all, embedding_list, plan_embeddings
from schemas.requests import EmbeddingRequest

_DECODER = msgspec.json.Decoder(EmbeddingRequest)


async def create_embeddings(request: web.Request) -> web.Response:
    state = state_of(request)
    body = await decode_body(request, _DECODER)
    plan = await plan_embeddings(body, state)
    request[MODEL_NAME] = plan.model.name
    async with within_deadline(request):
        results = await embed_all(state.engine, plan, request[REQUEST_ID])
    return json_response(embedding_list(plan, results))
