"""The official openai SDK against `python -m gateway` (a subprocess, as users run it)."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest


@pytest.fixture(scope="module")
def sdk(gateway_process: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway_process}/v1", api_key="not-needed", max_retries=0) as client:
        yield client


def test_models(sdk: openai.OpenAI) -> None:
    ids = [model.id for model in sdk.models.list()]
    assert "vllm_model" in ids and "add_sub" not in ids
    assert sdk.models.retrieve("vllm_model").id == "vllm_model"


def test_chat(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(
        model="vllm_model",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}],
        temperature=0,
        max_completion_tokens=50,
    )
    assert completion.choices[0].message.content == "You said: Hello there"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens > 0


def test_chat_stream_with_usage(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="vllm_model",
        messages=[{"role": "user", "content": "Hello there"}],
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "You said: Hello there"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    assert chunks[-1].usage.total_tokens == chunks[-1].usage.prompt_tokens + chunks[-1].usage.completion_tokens


def test_completions_stream_and_not(sdk: openai.OpenAI) -> None:
    completion = sdk.completions.create(model="vllm_model", prompt="Once upon a time", max_tokens=4, temperature=0)
    assert completion.choices[0].finish_reason == "length"
    streamed = "".join(
        chunk.choices[0].text
        for chunk in sdk.completions.create(
            model="vllm_model", prompt="Once upon a time", max_tokens=4, temperature=0, stream=True
        )
    )
    assert streamed == completion.choices[0].text


def test_errors_surface_as_sdk_exceptions(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as not_found:
        sdk.chat.completions.create(model="missing", messages=[{"role": "user", "content": "hi"}])
    assert not_found.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.chat.completions.create(model="vllm_model", messages=[{"role": "user", "content": "hi"}], temperature=9)
    assert bad.value.param == "temperature"
