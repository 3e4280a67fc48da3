"""n > 1 (one Triton request per choice), several prompts, token-id prompts and echo."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.conftest import sse_events, user


@pytest.fixture(scope="module")
def sdk(gateway_process: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway_process}/v1", api_key="not-needed", max_retries=0) as client:
        yield client


@pytest.mark.parametrize("model", ["vllm_model", "ensemble", "llmapi"])
def test_chat_n_choices(sdk: openai.OpenAI, model: str) -> None:
    reply = sdk.chat.completions.create(model=model, messages=user("Hello there"), n=3, temperature=0, max_tokens=40)
    assert [choice.index for choice in reply.choices] == [0, 1, 2]
    assert {choice.message.content for choice in reply.choices} == {"You said: Hello there"}
    single = sdk.chat.completions.create(model=model, messages=user("Hello there"), temperature=0, max_tokens=40)
    assert reply.usage is not None and single.usage is not None
    assert reply.usage.prompt_tokens == single.usage.prompt_tokens  # the prompt counts once
    assert reply.usage.completion_tokens == 3 * single.usage.completion_tokens


def test_chat_n_streamed(sdk: openai.OpenAI) -> None:
    chunks = list(
        sdk.chat.completions.create(
            model="vllm_model",
            messages=user("Hello there"),
            n=2,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    texts = {0: "", 1: ""}
    roles, finishes = set(), {}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.delta.role:
                roles.add(choice.index)
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert texts == {0: "You said: Hello there", 1: "You said: Hello there"}
    assert roles == {0, 1} and finishes == {0: "stop", 1: "stop"}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


def test_seeded_choices_differ_but_repeat(sdk: openai.OpenAI) -> None:
    def contents() -> list[str]:
        reply = sdk.chat.completions.create(
            model="vllm_model", messages=user("Hello there"), n=4, temperature=1.0, seed=3, max_tokens=40
        )
        return [choice.message.content or "" for choice in reply.choices]

    first = contents()
    assert first == contents()
    assert len(set(first)) > 1  # each choice has its own seed


def test_several_prompts_and_n(sdk: openai.OpenAI) -> None:
    reply = sdk.completions.create(model="vllm_model", prompt=["one", "two"], n=2, temperature=0, max_tokens=20)
    assert [(c.index, c.text) for c in reply.choices] == [
        (0, "You said: one"),
        (1, "You said: one"),
        (2, "You said: two"),
        (3, "You said: two"),
    ]
    streamed: dict[int, str] = {}
    for chunk in sdk.completions.create(model="vllm_model", prompt=["one", "two"], temperature=0, stream=True):
        for choice in chunk.choices:
            streamed[choice.index] = streamed.get(choice.index, "") + choice.text
    assert streamed == {0: "You said: one", 1: "You said: two"}


def test_token_id_prompts_are_decoded_with_the_tokenizer(sdk: openai.OpenAI, tokenizer) -> None:  # type: ignore[no-untyped-def]
    ids = tokenizer.encode("Once upon a time", add_special_tokens=False)
    reply = sdk.completions.create(model="vllm_model", prompt=ids, temperature=0, max_tokens=30)
    assert reply.choices[0].text == "You said: Once upon a time"
    reply = sdk.completions.create(model="vllm_model", prompt=[ids, ids[:2]], temperature=0, max_tokens=30)
    assert [choice.text for choice in reply.choices] == [
        "You said: Once upon a time",
        "You said: " + tokenizer.decode(ids[:2]),
    ]


async def test_echo_streamed_and_not(client) -> None:
    body = {"model": "vllm_model", "prompt": "Say it", "echo": True, "temperature": 0, "max_tokens": 30}
    full = await (await client.post("/v1/completions", json=body)).json()
    assert full["choices"][0]["text"] == "Say itYou said: Say it"
    events = await sse_events(await client.post("/v1/completions", json={**body, "stream": True}))
    assert "".join(e["choices"][0]["text"] for e in events[:-1] if e["choices"]) == full["choices"][0]["text"]


async def test_a_failing_choice_fails_the_request_and_cancels_the_others(client) -> None:
    # Choice 1's prompt is too long for the model; the request fails as a whole.
    body = {"model": "vllm_model", "prompt": ["short", "word " * 400], "max_tokens": 20}
    response = await client.post("/v1/completions", json=body)
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "context_length_exceeded"


async def test_too_many_choices_is_a_400(client) -> None:
    body = {"model": "vllm_model", "prompt": ["a"] * 10, "n": 20}
    response = await client.post("/v1/completions", json=body)
    assert response.status == 400
    assert (await response.json())["error"]["param"] == "n"
