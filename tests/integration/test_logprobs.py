"""Token logprobs in OpenAI's chat and completions shapes, and best_of."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.conftest import sse_events, user


@pytest.fixture(scope="module")
def sdk(gateway_process: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway_process}/v1", api_key="not-needed", max_retries=0) as client:
        yield client


def test_chat_logprobs(sdk: openai.OpenAI) -> None:
    reply = sdk.chat.completions.create(
        model="vllm_model", messages=user("Hello there"), temperature=0, logprobs=True, top_logprobs=2, max_tokens=40
    )
    choice = reply.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content is not None
    entries = choice.logprobs.content
    assert reply.usage is not None and len(entries) == reply.usage.completion_tokens  # EOS included
    assert "".join(entry.token for entry in entries) == choice.message.content
    for entry in entries:
        assert entry.logprob <= 0 and entry.bytes == list(entry.token.encode())
        assert len(entry.top_logprobs) == 2
        assert entry.top_logprobs[0].logprob >= entry.top_logprobs[1].logprob
        assert entry.top_logprobs[0].token == entry.token  # the stand-in samples greedily


def test_chat_logprobs_streamed_match(sdk: openai.OpenAI) -> None:
    kwargs = {
        "model": "vllm_model",
        "messages": user("Hello there"),
        "temperature": 0,
        "logprobs": True,
        "max_tokens": 40,
    }
    full = sdk.chat.completions.create(**kwargs)
    streamed = []
    for chunk in sdk.chat.completions.create(stream=True, **kwargs):
        if chunk.choices and chunk.choices[0].logprobs and chunk.choices[0].logprobs.content:
            streamed += chunk.choices[0].logprobs.content
    assert full.choices[0].logprobs is not None
    assert [(e.token, e.logprob) for e in streamed] == [
        (e.token, e.logprob) for e in full.choices[0].logprobs.content or []
    ]
    assert all(entry.top_logprobs == [] for entry in streamed)  # top_logprobs not asked for


async def test_completion_logprobs_have_offsets(client) -> None:
    body = {"model": "vllm_model", "prompt": "Once upon a time", "temperature": 0, "logprobs": 3, "max_tokens": 40}
    full = await (await client.post("/v1/completions", json=body)).json()
    choice = full["choices"][0]
    logprobs = choice["logprobs"]
    assert "".join(logprobs["tokens"]) == choice["text"]
    assert len(logprobs["tokens"]) == len(logprobs["token_logprobs"]) == len(logprobs["top_logprobs"])
    assert logprobs["text_offset"][0] == 0
    for offset, token, nxt in zip(logprobs["text_offset"], logprobs["tokens"], logprobs["text_offset"][1:]):
        assert nxt == offset + len(token)
    assert all(len(top) <= 3 for top in logprobs["top_logprobs"])
    events = await sse_events(await client.post("/v1/completions", json={**body, "stream": True}))
    offsets = [
        o
        for e in events[:-1]
        if e["choices"] and e["choices"][0]["logprobs"]
        for o in e["choices"][0]["logprobs"]["text_offset"]
    ]
    assert offsets == logprobs["text_offset"]


def test_best_of_returns_n_of_the_candidates_and_counts_them_all(sdk: openai.OpenAI) -> None:
    single = sdk.completions.create(model="vllm_model", prompt="Once upon a time", temperature=0, max_tokens=40)
    best = sdk.completions.create(
        model="vllm_model", prompt="Once upon a time", temperature=0, max_tokens=40, best_of=3
    )
    assert len(best.choices) == 1 and best.choices[0].text == single.choices[0].text
    assert best.usage is not None and single.usage is not None
    assert best.usage.completion_tokens == 3 * single.usage.completion_tokens


@pytest.mark.parametrize(
    ("model", "kwargs", "param"),
    [
        ("ensemble", {"logprobs": True}, "logprobs"),
        ("tensorrt_llm_bls", {"logprobs": True}, "logprobs"),
        ("vllm_legacy", {"logprobs": True}, "logprobs"),
    ],
)
def test_models_that_cannot_report_logprobs_refuse_them(
    sdk: openai.OpenAI, model: str, kwargs: dict, param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model=model, messages=user("x"), **kwargs)
    assert caught.value.param == param


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "ensemble", "best_of": 2}, "best_of"),
        ({"model": "vllm_model", "best_of": 2, "stream": True}, "best_of"),
        ({"model": "vllm_model", "best_of": 1, "n": 2}, "best_of"),
        ({"model": "vllm_model", "echo": True, "logprobs": 1}, "logprobs"),
    ],
)
async def test_completion_combinations_refused(client, body: dict, param: str) -> None:  # type: ignore[no-untyped-def]
    response = await client.post("/v1/completions", json={"prompt": "x", **body})
    assert response.status == 400
    assert (await response.json())["error"]["param"] == param
