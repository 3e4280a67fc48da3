"""Every bad request gets an OpenAI error envelope with the right status and field."""

from __future__ import annotations

from typing import Any

import pytest

MESSAGES = [{"role": "user", "content": "hi"}]


async def error_of(response, status: int) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    assert response.status == status, await response.text()
    assert response.headers["Content-Type"].startswith("application/json")
    body = await response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert "Traceback" not in body["error"]["message"]
    return body["error"]


async def test_malformed_json(client) -> None:
    response = await client.post("/v1/chat/completions", data=b'{"model": "vllm_model", "messages": [')
    error = await error_of(response, 400)
    assert error["code"] == "invalid_json"


async def test_empty_and_non_object_bodies(client) -> None:
    await error_of(await client.post("/v1/chat/completions", data=b""), 400)
    error = await error_of(await client.post("/v1/completions", data=b"[1, 2]"), 400)
    assert "object" in error["message"]


@pytest.mark.parametrize(
    ("patch", "param"),
    [
        ({"model": None}, "model"),
        ({"messages": None}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": [{"type": "video", "video": {}}]}]}, "messages[0].content[0].type"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": -1}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"presence_penalty": 3}, "presence_penalty"),
        ({"frequency_penalty": -2.1}, "frequency_penalty"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": "many"}, "max_tokens"),
        ({"max_completion_tokens": -5}, "max_completion_tokens"),
        ({"max_tokens": 2**21}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "x"}] * 4097}, "messages"),
        ({"seed": 1.5}, "seed"),
        ({"seed": 2**64}, "seed"),
        ({"stop": 3}, "stop"),
        ({"stop": ["a"] * 17}, "stop"),
        ({"stream": "yes"}, "stream"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"n": 0}, "n"),
        ({"n": 65}, "n"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"tools": [{"type": "function"}]}, "tools[0].function"),
        ({"tools": [{"type": "function", "function": {"name": "has space"}}]}, "tools[0].function.name"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"logit_bias": {"x": 1.0}}, "logit_bias"),
        ({"top_k": -2}, "top_k"),
        ({"min_p": 1.5}, "min_p"),
        ({"repetition_penalty": 0}, "repetition_penalty"),
        ({"stop_token_ids": [-1]}, "stop_token_ids[0]"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            "messages[0].content[0].image_url.url",
        ),
    ],
)
async def test_invalid_fields_are_named(client, patch: dict[str, Any], param: str) -> None:
    body: dict[str, Any] = {"model": "vllm_model", "messages": MESSAGES}
    for key, value in patch.items():
        if value is None:
            body.pop(key)
        else:
            body[key] = value
    error = await error_of(await client.post("/v1/chat/completions", json=body), 400)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


async def test_unknown_model_is_404(client) -> None:
    response = await client.post("/v1/chat/completions", json={"model": "gpt-9", "messages": MESSAGES})
    error = await error_of(response, 404)
    assert error["code"] == "model_not_found"
    assert error["param"] == "model"
    assert "gpt-9" in error["message"]


async def test_prompt_longer_than_the_context_is_a_400_not_a_backend_crash(client) -> None:
    messages = [{"role": "user", "content": "word " * 400}]
    for stream in (False, True):
        body = {"model": "vllm_model", "messages": messages, "stream": stream}
        error = await error_of(await client.post("/v1/chat/completions", json=body), 400)
        assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
        assert "maximum context length is 256 tokens" in error["message"]
        assert "parameter=" not in error["message"]


async def test_oversize_body_is_413(aiohttp_client, settings) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from gateway.app import create_app

    client = await aiohttp_client(create_app(replace(settings, http_max_input_size=2048)))
    big = {"model": "vllm_model", "messages": [{"role": "user", "content": "x" * 4096}]}
    error = await error_of(await client.post("/v1/chat/completions", json=big), 413)
    assert "2048" in error["message"]

    async def chunks():  # no Content-Length: the limit still holds while reading
        for _ in range(8):
            yield b"x" * 1024

    error = await error_of(await client.post("/v1/chat/completions", data=chunks()), 413)
    assert "2048" in error["message"]
    small = {"model": "vllm_model", "messages": MESSAGES, "temperature": 0}
    assert (await client.post("/v1/chat/completions", json=small)).status == 200


async def test_unknown_route_and_wrong_method(client) -> None:
    error = await error_of(await client.get("/v1/nothing-here"), 404)
    assert "/v1/nothing-here" in error["message"]
    await error_of(await client.get("/v1/chat/completions"), 405)
