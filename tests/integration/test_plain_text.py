"""A plain decoupled text model (text_input + stream in, text_output out, dims [1, 1], no
max_tokens), as Triton's own frontend serves it: through the openai SDK, with only the inputs
it declares."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.conftest import user

MODEL = "plain_text"


@pytest.fixture(scope="module")
def sdk(gateway_process: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway_process}/v1", api_key="not-needed", max_retries=0) as client:
        yield client


def test_chat_streamed_equals_non_streamed(sdk: openai.OpenAI, tokenizer) -> None:  # type: ignore[no-untyped-def]
    # temperature and max_tokens have no input here: they are not sent, and nothing breaks.
    full = sdk.chat.completions.create(model=MODEL, messages=user("Hello there"), temperature=0.7, max_tokens=50)
    assert full.choices[0].message.content == "You said: Hello there"
    assert full.choices[0].finish_reason == "stop"
    assert full.usage is not None
    assert full.usage.completion_tokens == len(tokenizer.encode("You said: Hello there", add_special_tokens=False))
    chunks = list(
        sdk.chat.completions.create(
            model=MODEL,
            messages=user("Hello there"),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "You said: Hello there"
    assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == full.usage.prompt_tokens


def test_completions_and_stop_strings(sdk: openai.OpenAI) -> None:
    completion = sdk.completions.create(model=MODEL, prompt="Once upon a time", stop=["upon"])
    assert completion.choices[0].text == "You said: Once "
    assert completion.choices[0].finish_reason == "stop"
    streamed = "".join(
        chunk.choices[0].text
        for chunk in sdk.completions.create(model=MODEL, prompt="Once upon a time", stop=["upon"], stream=True)
    )
    assert streamed == "You said: Once "


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"logprobs": True}, "logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"logit_bias": {"5": 1}}, "logit_bias"),
    ],
)
def test_what_only_the_model_could_do_is_refused(sdk: openai.OpenAI, fields: dict, param: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model=MODEL, messages=user("Hello"), **fields)
    error = caught.value.body
    assert isinstance(error, dict) and error["param"] == param and error["code"] == "unsupported_parameter"
    assert "plain text model" in error["message"]
