"""From OpenAI request fields to the engine-neutral generation request; fields this
gateway cannot honour yet are refused by name instead of being dropped."""

from __future__ import annotations

from gateway.backends.base import GenerationRequest
from gateway.errors import InvalidRequest
from schemas.requests import SamplingFields


def unsupported(param: str, what: str) -> InvalidRequest:
    return InvalidRequest(f"{what} is not supported by this gateway.", param=param, code="unsupported_parameter")


def check_common(body: SamplingFields) -> None:
    if body.stream_options is not None and not body.stream:
        raise InvalidRequest("stream_options is only allowed when stream is true.", param="stream_options")
    if body.n != 1:
        raise unsupported("n", "n other than 1")
    if body.logit_bias:
        raise unsupported("logit_bias", "logit_bias")


def stop_strings(stop: str | list[str] | None) -> list[str]:
    if stop is None:
        return []
    items = [stop] if isinstance(stop, str) else stop
    return [item for item in items if item]


def generation_request(body: SamplingFields, *, request_id: str, prompt: str, max_tokens: int) -> GenerationRequest:
    return GenerationRequest(
        request_id=request_id,
        prompt=prompt,
        stream=body.stream,
        max_tokens=max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty,
        seed=body.seed,
        stop=stop_strings(body.stop),
    )
