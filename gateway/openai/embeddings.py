"""Embeddings without a web framework: `plan_embeddings` checks a request body against the
model it names, `embed_all` runs its inputs on the engine (a bounded number at once), and
`embedding_list` renders the vectors and their usage."""

from __future__ import annotations

import asyncio
import base64
import struct
from dataclasses import dataclass

from gateway.engine import Engine
from gateway.errors import InvalidRequest
from gateway.generation import TokenizerTools
from gateway.model_info import ModelInfo
from gateway.openai.context import GatewayState
from gateway.openai.resolve import resolve_target
from schemas.requests import EmbeddingRequest
from schemas.responses import Embedding, EmbeddingList, EmbeddingUsage

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


@dataclass(frozen=True)
class EmbeddingPlan:
    model_name: str  # as the client named it, shown in the response
    model: ModelInfo
    items: list[str | list[int]]
    dimensions: int | None
    encoding_format: str
    tokenizer: TokenizerTools | None


async def plan_embeddings(body: EmbeddingRequest, state: GatewayState) -> EmbeddingPlan:
    items = embedding_inputs(body)
    target = await resolve_target(state, body.model)
    if target.adapter is not None:
        raise InvalidRequest("LoRA adapters serve generation, not embeddings.", param="model")
    model = target.model
    return EmbeddingPlan(
        body.model, model, items, body.dimensions, body.encoding_format, state.tokenizers.tools(model.name)
    )


async def embed_all(engine: Engine, plan: EmbeddingPlan, request_id: str) -> list[tuple[list[float], int | None]]:
    """Every input's vector and reported token count, PARALLEL_REQUESTS at once at most (the
    Triton request ids are `<request id>-<index>`); the first failure cancels the rest."""
    limit = asyncio.Semaphore(PARALLEL_REQUESTS)

    async def embed(index: int, item: str | list[int]) -> tuple[list[float], int | None]:
        async with limit:
            return await engine.embed(plan.model, f"{request_id}-{index}", item, plan.dimensions)

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(embed(index, item)) for index, item in enumerate(plan.items)]
    except ExceptionGroup as failures:
        raise failures.exceptions[0] from None
    return [task.result() for task in tasks]


def embedding_list(plan: EmbeddingPlan, results: list[tuple[list[float], int | None]]) -> EmbeddingList:
    counts = [_count(item, tokens, plan.tokenizer) for item, (_, tokens) in zip(plan.items, results, strict=True)]
    total = None if any(count is None for count in counts) else sum(count or 0 for count in counts)
    return EmbeddingList(
        data=[Embedding(index, _encode(vector, plan.encoding_format)) for index, (vector, _) in enumerate(results)],
        model=plan.model_name,
        usage=None if total is None else EmbeddingUsage(total, total),
    )
