"""From OpenAI request fields to the engine-neutral generation request; fields this
gateway cannot honour yet are refused by name instead of being dropped."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.errors import InvalidRequest
from gateway.generation import SAMPLING_FIELDS, GenerationRequest, GuidedDecoding, Sampling, TokenizerTools
from schemas.requests import SamplingFields


def unsupported(param: str, what: str) -> InvalidRequest:
    return InvalidRequest(f"{what} is not supported by this gateway.", param=param, code="unsupported_parameter")


def check_common(body: SamplingFields) -> None:
    if body.stream_options is not None and not body.stream:
        raise InvalidRequest("stream_options is only allowed when stream is true.", param="stream_options")


def stop_strings(stop: str | list[str] | None) -> list[str]:
    if stop is None:
        return []
    items = [stop] if isinstance(stop, str) else stop
    return [item for item in items if item]


def token_bias(bias: dict[str, float] | None, vocab_size: int | None) -> dict[int, float] | None:
    """logit_bias with its token ids checked: integers, inside the vocabulary when it is known."""
    if not bias:
        return None
    checked = {}
    for key, value in bias.items():
        try:
            token = int(key)
        except ValueError:
            raise InvalidRequest(f"logit_bias keys are token ids; '{key}' is not one.", param="logit_bias") from None
        if token < 0 or (vocab_size is not None and token >= vocab_size):
            limit = f" (the vocabulary has {vocab_size} tokens)" if vocab_size is not None else ""
            raise InvalidRequest(f"logit_bias names token {token}, which does not exist{limit}.", param="logit_bias")
        checked[token] = value
    return checked


def checked_min_tokens(min_tokens: int | None, max_tokens: int) -> int | None:
    """vLLM fails inside the engine on min_tokens > max_tokens; say so up front."""
    if min_tokens is not None and min_tokens > max_tokens:
        raise InvalidRequest(f"min_tokens ({min_tokens}) may not exceed max_tokens ({max_tokens}).", param="min_tokens")
    return min_tokens


def checked_stop_token_ids(token_ids: list[int] | None, vocab_size: int | None) -> list[int] | None:
    """stop_token_ids inside the vocabulary when it is known (vLLM refuses others)."""
    if token_ids and vocab_size is not None:
        outside = [token for token in token_ids if not 0 <= token < vocab_size]
        if outside:
            raise InvalidRequest(
                f"stop_token_ids {outside} are not token ids of this model (the vocabulary has {vocab_size} tokens).",
                param="stop_token_ids",
            )
    return token_ids


# Prompts this long are counted in a worker thread (tokenizing costs about 0.5 ms a KB).
INLINE_COUNT_CHARS = 16384


async def count_prompt(prompt: str, tokenizer: TokenizerTools) -> int:
    """The prompt's tokens as its backend counts them; a long prompt is counted off the loop."""
    if len(prompt) <= INLINE_COUNT_CHARS:
        return tokenizer.prompt_tokens(prompt)
    return await asyncio.to_thread(tokenizer.prompt_tokens, prompt)


async def chat_max_tokens(
    requested: int | None, max_model_len: int | None, prompt: str, tokenizer: TokenizerTools | None, default: int
) -> int:
    """A chat request's max_tokens: the one it asks for (if it fits the context), else what is
    left of the context when the model's length is known (as vLLM's own server does), else
    `default` (--default-chat-max-tokens)."""
    if requested is not None:
        await check_room(max_model_len, prompt, requested, tokenizer)
        return requested
    if max_model_len is None or tokenizer is None:
        return default
    prompt_tokens = await count_prompt(prompt, tokenizer)
    if prompt_tokens >= max_model_len:
        raise InvalidRequest(
            f"This model's maximum context length is {max_model_len} tokens; the prompt alone has {prompt_tokens}.",
            param="messages",
            code="context_length_exceeded",
        )
    return max_model_len - prompt_tokens


async def check_room(
    max_model_len: int | None, prompt: str, requested: int | None, tokenizer: TokenizerTools | None
) -> None:
    """A `requested` max_tokens that cannot fit beside the prompt in the model's context: a 400,
    as vLLM's own server gives (through Triton's backend it would be cut short silently)."""
    if max_model_len is None or requested is None:
        return
    if requested > max_model_len:
        raise InvalidRequest(
            f"max_tokens ({requested}) is more than this model's context of {max_model_len} tokens.",
            param="max_tokens",
            code="context_length_exceeded",
        )
    # A token holds at least one byte and a character at most four: short prompts surely fit.
    if tokenizer is None or len(prompt) * 4 + 2 + requested <= max_model_len:
        return
    prompt_tokens = await count_prompt(prompt, tokenizer)
    if prompt_tokens + requested > max_model_len:
        raise InvalidRequest(
            f"This model's maximum context length is {max_model_len} tokens. However, you requested "
            f"{prompt_tokens + requested} tokens ({prompt_tokens} in the prompt, {requested} in the completion).",
            param="max_tokens",
            code="context_length_exceeded",
        )


def generation_request(
    body: SamplingFields,
    *,
    request_id: str,
    prompt: str,
    max_tokens: int,
    guided: GuidedDecoding | None = None,
    vocab_size: int | None = None,
    keep_special_tokens: bool = False,
    **request: Any,
) -> GenerationRequest:
    """The whole generation request of one choice: the body's sampling fields (checked) and
    `request`'s other GenerationRequest fields (logprobs, images, LoRA adapter, …).
    `keep_special_tokens`: the output is parsed for special-token markers, so the backend is
    asked to keep them (unless the client said otherwise)."""
    fields = {name: getattr(body, name) for name in SAMPLING_FIELDS}  # the API's names
    fields["min_tokens"] = checked_min_tokens(body.min_tokens, max_tokens)
    fields["stop_token_ids"] = checked_stop_token_ids(body.stop_token_ids, vocab_size)
    fields["logit_bias"] = token_bias(body.logit_bias, vocab_size)
    if keep_special_tokens and fields["skip_special_tokens"] is None:
        fields["skip_special_tokens"] = False
    sampling = Sampling(**fields)  # built once: a frozen dataclass is slow to build
    return GenerationRequest(
        request_id=request_id,
        prompt=prompt,
        stream=body.stream,
        max_tokens=max_tokens,
        sampling=sampling,
        stop=stop_strings(body.stop),
        guided=guided,
        **request,
    )
