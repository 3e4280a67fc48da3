"""POST /v1/embeddings"""

from __future__ import annotations

import asyncio
import base64
import struct

import msgspec
from aiohttp import web

from gateway.errors import InvalidRequest
from gateway.generation import TokenizerTools
from gateway.http.body import decode_body
from gateway.http.middleware import MODEL_NAME, REQUEST_ID, within_deadline
from gateway.http.state import state_of
from gateway.openai.resolve import resolve_target
from schemas.requests import EmbeddingRequest
from schemas.responses import Embedding, EmbeddingList, EmbeddingUsage

_DECODER = msgspec.json.Decoder(EmbeddingRequest)
_ENCODER = msgspec.json.Encoder()
MAX_INPUTS = 2048
PARALLEL_REQUESTS = 32  # inputs in flight at once on Triton for one API request


def embedding_inputs(body: EmbeddingRequest) -> list[str | list[int]]:
    """Each input the backend embeds on its own: strings, or lists of token ids."""
    source = body.input
    if isinstance(source, str):
        items: list[str | list[int]] = [source]
    elif source and all(isinstance(item, int) for item in source):
        items = [[int(item) for item in source]]  # type: ignore[arg-type]
    elif source and all(isinstance(item, str | list) for item in source) and len({type(i) for i in source}) == 1:
        items = list(source)  # type: ignore[arg-type]
    else:
        raise InvalidRequest("input must be a string, strings, token ids, or lists of token ids.", param="input")
    if len(items) > MAX_INPUTS:
        raise InvalidRequest(f"At most {MAX_INPUTS} inputs per request.", param="input")
    for index, item in enumerate(items):
        if not item:
            raise InvalidRequest("An input must not be empty.", param=f"input[{index}]" if len(items) > 1 else "input")
    return items


def _encode(vector: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


def _count(item: str | list[int], reported: int | None, tokenizer: TokenizerTools | None) -> int | None:
    if reported is not None:
        return reported
    if isinstance(item, list):
        return len(item)
    return tokenizer.count_tokens(item) if tokenizer is not None else None


async def create_embeddings(request: web.Request) -> web.Response:
    state = state_of(request)
    body = await decode_body(request, _DECODER)
    items = embedding_inputs(body)
    target = await resolve_target(state, body.model)
    if target.adapter is not None:
        raise InvalidRequest("LoRA adapters serve generation, not embeddings.", param="model")
    model = target.model
    request[MODEL_NAME] = model.name
    tokenizer = state.tokenizers.tools(model.name)
    request_id = request[REQUEST_ID]
    limit = asyncio.Semaphore(PARALLEL_REQUESTS)

    async def embed(index: int, item: str | list[int]) -> tuple[list[float], int | None]:
        async with limit:
            return await state.engine.embed(model, f"{request_id}-{index}", item, body.dimensions)

    try:
        async with within_deadline(request), asyncio.TaskGroup() as group:
            tasks = [group.create_task(embed(index, item)) for index, item in enumerate(items)]
    except ExceptionGroup as failures:
        raise failures.exceptions[0] from None
    results = [task.result() for task in tasks]
    counts = [_count(item, tokens, tokenizer) for item, (_, tokens) in zip(items, results, strict=True)]
    total = None if any(count is None for count in counts) else sum(count or 0 for count in counts)
    response = EmbeddingList(
        data=[Embedding(index, _encode(vector, body.encoding_format)) for index, (vector, _) in enumerate(results)],
        model=body.model,
        usage=None if total is None else EmbeddingUsage(total, total),
    )
    return web.Response(body=_ENCODER.encode(response), content_type="application/json")
