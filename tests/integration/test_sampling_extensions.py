"""vLLM sampling extensions, logit_bias, chat_template_kwargs and continuous usage."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import sse_events, user

REPLY = "You said: Hello there"


async def chat(client, **body: Any):  # type: ignore[no-untyped-def]
    body.setdefault("model", "vllm_model")
    body.setdefault("messages", user("Hello there"))
    body.setdefault("temperature", 0)
    return await client.post("/v1/chat/completions", json=body)


async def test_vllm_extensions_are_accepted(client) -> None:
    response = await chat(
        client, top_k=5, min_p=0.1, repetition_penalty=1.1, skip_special_tokens=True, include_stop_str_in_output=False
    )
    assert response.status == 200, await response.text()


async def test_ignore_eos_and_min_tokens_reach_vllm(client) -> None:
    body = await (await chat(client, ignore_eos=True, max_tokens=30)).json()
    assert body["usage"]["completion_tokens"] == 30 and body["choices"][0]["finish_reason"] == "length"
    body = await (await chat(client, min_tokens=25, max_tokens=30)).json()
    assert body["usage"]["completion_tokens"] >= 25


async def test_stop_token_ids(client, tokenizer) -> None:  # type: ignore[no-untyped-def]
    token = tokenizer.encode(REPLY, add_special_tokens=False)[3]
    body = await (await chat(client, stop_token_ids=[token])).json()
    assert body["choices"][0]["finish_reason"] == "stop"
    assert REPLY.startswith(body["choices"][0]["message"]["content"])
    assert len(body["choices"][0]["message"]["content"]) < len(REPLY)


@pytest.mark.parametrize("model", ["vllm_model", "ensemble", "tensorrt_llm_bls", "llmapi"])
@pytest.mark.parametrize("stream", [False, True])
async def test_include_stop_str_in_output(client, model: str, stream: bool) -> None:  # type: ignore[no-untyped-def]
    response = await chat(client, model=model, stop=["there"], include_stop_str_in_output=True, stream=stream)
    if stream:
        events = await sse_events(response)
        text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1] if e["choices"])
    else:
        text = (await response.json())["choices"][0]["message"]["content"]
    assert text == REPLY


async def test_logit_bias_is_refused_on_vllm_models_with_the_reason(client, tokenizer) -> None:  # type: ignore[no-untyped-def]
    # Triton's vLLM backend hands vLLM string keys, which vLLM cannot use: a 400 saying so.
    response = await chat(client, logit_bias={"5": 10.0})
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["param"] == "logit_bias" and error["code"] == "unsupported_parameter" and "strings" in error["message"]
    for bias in ({str(len(tokenizer) + 10): 1.0}, {"-1": 1.0}, {"word": 1.0}):
        response = await chat(client, logit_bias=bias)
        assert response.status == 400
        assert (await response.json())["error"]["param"] == "logit_bias"
    error = (await (await chat(client, logit_bias={"5": 500})).json())["error"]
    assert error["param"] == "logit_bias" and "100" in error["message"]


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        ("ensemble", "repetition_penalty", 1.2),
        ("ensemble", "ignore_eos", True),
        ("ensemble", "logit_bias", {"5": 1.0}),
        ("tensorrt_llm_bls", "stop_token_ids", [5]),
        ("llmapi", "min_p", 0.1),
    ],
)
async def test_trtllm_models_refuse_what_they_cannot_take(client, model: str, field: str, value: Any) -> None:  # type: ignore[no-untyped-def]
    response = await chat(client, model=model, **{field: value})
    assert response.status == 400
    assert (await response.json())["error"]["param"] == field


@pytest.mark.parametrize("model", ["ensemble", "tensorrt_llm_bls"])
async def test_min_tokens_reaches_old_and_new_trtllm_names(client, model: str) -> None:  # type: ignore[no-untyped-def]
    # The end-of-sequence token is held off, so the reply goes on past its usual end.
    body = await (await chat(client, model=model, min_tokens=30, max_tokens=30)).json()
    assert body["choices"][0]["message"]["content"].startswith(REPLY + " You")


async def test_chat_template_kwargs(client) -> None:
    assert (await chat(client, chat_template_kwargs={"enable_thinking": False})).status == 200
    response = await chat(client, chat_template_kwargs={"tokenize": True})
    assert response.status == 400
    assert (await response.json())["error"]["param"] == "chat_template_kwargs.tokenize"


async def test_continuous_usage_stats_put_usage_on_every_chunk(client) -> None:
    options = {"include_usage": True, "continuous_usage_stats": True}
    events = await sse_events(await chat(client, stream=True, stream_options=options))
    chunks = [event for event in events[:-1] if event["choices"]]
    counts = [chunk["usage"]["completion_tokens"] for chunk in chunks[1:]]
    assert counts == sorted(counts) and counts[-1] == events[-2]["usage"]["completion_tokens"]


async def test_min_tokens_above_max_tokens_is_refused(client) -> None:  # type: ignore[no-untyped-def]
    response = await chat(client, min_tokens=20, max_tokens=10)
    assert response.status == 400 and (await response.json())["error"]["param"] == "min_tokens"


async def test_stop_token_ids_outside_the_vocabulary_are_refused(client, tokenizer) -> None:  # type: ignore[no-untyped-def]
    response = await chat(client, stop_token_ids=[5, len(tokenizer) + 99])
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["param"] == "stop_token_ids" and str(len(tokenizer) + 99) in error["message"]


async def test_max_tokens_beyond_the_known_context_is_refused(client) -> None:  # type: ignore[no-untyped-def]
    """vllm_model's model.json sets max_model_len 256: vLLM's own server refuses a request whose
    prompt and max_tokens do not fit (through Triton's backend it would be cut silently)."""
    for max_tokens in (300, 250):
        response = await chat(client, max_tokens=max_tokens)
        assert response.status == 400
        error = (await response.json())["error"]
        assert error["param"] == "max_tokens" and error["code"] == "context_length_exceeded"
    assert (await chat(client, max_tokens=200)).status == 200
    completion = await client.post(
        "/v1/completions", json={"model": "vllm_model", "prompt": "hi " * 40, "max_tokens": 240}
    )
    assert completion.status == 400 and (await completion.json())["error"]["param"] == "max_tokens"
    assert (
        await client.post("/v1/completions", json={"model": "vllm_model", "prompt": "hi", "max_tokens": 240})
    ).status == 200
