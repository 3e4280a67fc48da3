"""POST /tokenize and /detokenize as vLLM's server shapes them, with each model's tokenizer:
a prompt (special tokens added unless `add_special_tokens` is false) or chat messages rendered
with the model's template (whose text already holds the special tokens), token ids back, and
their strings when asked; token ids back to text. Long inputs are encoded in a worker thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from gateway.errors import InvalidRequest
from gateway.openai.chat import chat_template_options, template_messages
from gateway.openai.context import GatewayState
from gateway.openai.resolve import resolve_target
from gateway.openai.tools import function_dict
from schemas.requests import DetokenizeRequest, TokenizeRequest
from schemas.responses import DetokenizeResponse, TokenizeResponse

T = TypeVar("T")
_INLINE_SIZE = 4096  # shorter texts (and token lists) are done on the loop: a thread hop costs more


async def tokenize(body: TokenizeRequest, state: GatewayState) -> TokenizeResponse:
    if (body.prompt is None) == (body.messages is None):
        raise InvalidRequest("Give either prompt or messages.", param="prompt" if body.prompt is None else "messages")
    model = (await resolve_target(state, body.model)).model
    tokenizer = _tokenizer(state, body.model, model.name)
    if body.messages is not None:
        messages, _ = template_messages(body.messages)  # images are placeholders in the text
        options = chat_template_options(body.chat_template_kwargs)
        if body.tools:
            options["tools"] = [{"type": "function", "function": function_dict(tool.function)} for tool in body.tools]
        text = await state.tokenizers.render_chat_async(
            model.name, messages, generation=(body.add_generation_prompt, body.continue_final_message), **options
        )
        add_special = bool(body.add_special_tokens)  # the template wrote them
    else:
        text = body.prompt or ""
        add_special = body.add_special_tokens is not False
    tokens = await _run(len(text), lambda: list(tokenizer.encode(text, add_special_tokens=add_special)))
    strings = tokenizer.convert_ids_to_tokens(tokens) if body.return_token_strs else None
    return TokenizeResponse(
        count=len(tokens), max_model_len=state.model_files.max_model_len(model), tokens=tokens, token_strs=strings
    )


async def detokenize(body: DetokenizeRequest, state: GatewayState) -> DetokenizeResponse:
    model = (await resolve_target(state, body.model)).model
    tokenizer = _tokenizer(state, body.model, model.name)
    size = len(tokenizer)
    for index, token in enumerate(body.tokens):
        if token >= size:
            raise InvalidRequest(
                f"Token id {token} is not in the model's vocabulary of {size:,}.", param=f"tokens[{index}]"
            )
    text = await _run(len(body.tokens), lambda: str(tokenizer.decode(body.tokens)))
    return DetokenizeResponse(prompt=text)


def _tokenizer(state: GatewayState, requested: str, model: str) -> Any:
    tokenizer = state.tokenizers.tokenizer(model)
    if tokenizer is None:
        raise InvalidRequest(
            f"The gateway has no tokenizer for '{requested}'; start it with --tokenizer.",
            param="model",
            code="tokenizer_unavailable",
        )
    return tokenizer


async def _run(size: int, call: Callable[[], T]) -> T:
    """`call()` on the loop for small inputs, in a worker thread for large ones."""
    if size <= _INLINE_SIZE:
        return call()
    return await asyncio.to_thread(call)
