"""Tool calling: every tool_choice, each parser format, streaming deltas, history, limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import openai
import pytest

from gateway.app import create_app
from tests.conftest import sse_events, user

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
            "required": ["city", "days"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}},
            "required": ["zone"],
        },
    },
}
TOOLS = [WEATHER, TIME]
ARGS = {"city": "Paris", "days": 2}
OUTPUTS = {  # what each model family writes, and the model configured with that parser
    "hermes": ("vllm_model", f'<tool_call>\n{{"name": "get_weather", "arguments": {json.dumps(ARGS)}}}\n</tool_call>'),
    "mistral": ("ensemble", f' [TOOL_CALLS][{{"name": "get_weather", "arguments": {json.dumps(ARGS)}}}]'),
    "llama3": ("tensorrt_llm_bls", f'{{"name": "get_weather", "parameters": {json.dumps(ARGS)}}}'),
}


@pytest.fixture(scope="module")
def sdk(gateway_process: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway_process}/v1", api_key="not-needed", max_retries=0) as client:
        yield client


def ask(sdk: openai.OpenAI, model: str, said: str, **kwargs: Any):  # type: ignore[no-untyped-def]
    kwargs.setdefault("tools", TOOLS)
    return sdk.chat.completions.create(model=model, messages=user(said), temperature=0, max_tokens=120, **kwargs)


def streamed_calls(sdk: openai.OpenAI, model: str, said: str, **kwargs: Any) -> tuple[dict[int, dict], str, str | None]:
    calls: dict[int, dict] = {}
    content, finish = "", None
    for chunk in ask(sdk, model, said, stream=True, **kwargs):
        for choice in chunk.choices:
            content += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for part in choice.delta.tool_calls or []:
                call = calls.setdefault(part.index, {"id": None, "name": None, "arguments": ""})
                if part.id:
                    assert call["id"] is None and part.type == "function" and part.function.name
                    call["id"], call["name"] = part.id, part.function.name
                call["arguments"] += part.function.arguments or ""
    return calls, content, finish


@pytest.mark.parametrize("parser", list(OUTPUTS))
def test_auto_parses_each_format_streamed_and_not(sdk: openai.OpenAI, parser: str) -> None:
    model, output = OUTPUTS[parser]
    reply = ask(sdk, model, "/raw " + output)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == ARGS
    assert not (choice.message.content or "").strip()
    if parser == "mistral":
        assert len(call.id) == 9 and call.id.isalnum()
    calls, content, finish = streamed_calls(sdk, model, "/raw " + output)
    assert finish == "tool_calls" and not content.strip()
    assert [(c["name"], c["arguments"]) for c in calls.values()] == [("get_weather", call.function.arguments)]


def test_text_around_calls_and_several_calls(sdk: openai.OpenAI) -> None:
    output = (
        'Checking both.<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo", "days": 1}}</tool_call>'
        '<tool_call>{"name": "get_time", "arguments": {"zone": "CET"}}</tool_call>'
    )
    reply = ask(sdk, "vllm_model", "/raw " + output)
    assert reply.choices[0].message.content == "Checking both."
    assert [c.function.name for c in reply.choices[0].message.tool_calls or []] == ["get_weather", "get_time"]
    calls, content, _ = streamed_calls(sdk, "vllm_model", "/raw " + output)
    assert content == "Checking both." and [c["name"] for c in calls.values()] == ["get_weather", "get_time"]
    single = ask(sdk, "vllm_model", "/raw " + output, parallel_tool_calls=False)
    assert [c.function.name for c in single.choices[0].message.tool_calls or []] == ["get_weather"]


@pytest.mark.parametrize("output", ["<tool_call>{not json}</tool_call>", "No tools needed, thanks."])
def test_what_is_not_a_call_stays_content(sdk: openai.OpenAI, output: str) -> None:
    reply = ask(sdk, "vllm_model", "/raw " + output)
    assert reply.choices[0].message.content == output
    assert reply.choices[0].message.tool_calls is None and reply.choices[0].finish_reason == "stop"
    _, content, finish = streamed_calls(sdk, "vllm_model", "/raw " + output)
    assert content == output and finish == "stop"


def test_none_never_parses(sdk: openai.OpenAI) -> None:
    model, output = OUTPUTS["hermes"]
    reply = ask(sdk, model, "/raw " + output, tool_choice="none")
    assert reply.choices[0].message.content == output and reply.choices[0].message.tool_calls is None


GUIDED_MODELS = ["vllm_model", "ensemble_guided"]  # vLLM's guided decoding; TensorRT-LLM's guide inputs


@pytest.mark.parametrize("model", GUIDED_MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_required_calls_one_of_the_tools_through_guided_decoding(sdk: openai.OpenAI, model: str, stream: bool) -> None:
    if stream:
        calls, _, finish = streamed_calls(sdk, model, "What now?", tool_choice="required")
        names = [(c["name"], json.loads(c["arguments"])) for c in calls.values()]
    else:
        reply = ask(sdk, model, "What now?", tool_choice="required")
        finish = reply.choices[0].finish_reason
        names = [(c.function.name, json.loads(c.function.arguments)) for c in reply.choices[0].message.tool_calls or []]
    assert finish == "tool_calls" and len(names) == 1
    name, arguments = names[0]
    assert name in ("get_weather", "get_time") and isinstance(arguments, dict)


@pytest.mark.parametrize("model", GUIDED_MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_named_tool_choice(sdk: openai.OpenAI, model: str, stream: bool) -> None:
    choice = {"type": "function", "function": {"name": "get_time"}}
    if stream:
        calls, _, _ = streamed_calls(sdk, model, "Time?", tool_choice=choice)
        found = [(c["name"], json.loads(c["arguments"])) for c in calls.values()]
    else:
        reply = ask(sdk, model, "Time?", tool_choice=choice)
        found = [(c.function.name, json.loads(c.function.arguments)) for c in reply.choices[0].message.tool_calls or []]
    assert found == [("get_time", {"zone": "UTC"})]  # the stand-in fills the schema with its first allowed value


def test_a_follow_up_turn_after_a_tool_result(sdk: openai.OpenAI) -> None:
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": json.dumps(ARGS)}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"},
        {"role": "user", "content": "Thanks, and tomorrow?"},
    ]
    reply = sdk.chat.completions.create(model="vllm_model", messages=messages, tools=TOOLS, temperature=0)
    assert reply.choices[0].message.content == "You said: Thanks, and tomorrow?"


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        (
            {"tools": [WEATHER, {"type": "function", "function": {"name": "bad", "parameters": {"type": "thing"}}}]},
            "tools[1].function.parameters",
        ),
        ({"tools": [WEATHER, WEATHER]}, "tools"),
        ({"tools": None, "tool_choice": "required"}, "tool_choice"),
        ({"tool_choice": "required", "response_format": {"type": "json_object"}}, "response_format"),
    ],
)
def test_bad_tool_requests_are_400s(sdk: openai.OpenAI, kwargs: dict, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        ask(sdk, "vllm_model", "x", **kwargs)
    assert caught.value.param == param


def test_forced_calls_on_a_model_without_guided_decoding_are_refused(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        ask(sdk, "ensemble", "x", tool_choice="required")
    assert caught.value.param == "tool_choice"


async def test_auto_without_a_parser_is_a_clear_400(aiohttp_client, settings) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(create_app(replace(settings, tool_call_parser=())))
    response = await client.post(
        "/v1/chat/completions", json={"model": "vllm_model", "messages": user("x"), "tools": TOOLS}
    )
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["param"] == "tool_choice" and "--tool-call-parser" in error["message"]


async def test_a_call_past_the_parse_limit_ends_with_length(aiohttp_client, settings) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(create_app(replace(settings, max_tool_call_parse_bytes=24)))
    said = "/raw " + OUTPUTS["hermes"][1]
    body = {"model": "vllm_model", "messages": user(said), "tools": TOOLS, "temperature": 0, "max_tokens": 120}
    full = await (await client.post("/v1/chat/completions", json=body)).json()
    assert full["choices"][0]["finish_reason"] == "length"
    events = await sse_events(await client.post("/v1/chat/completions", json={**body, "stream": True}))
    finishes = [e["choices"][0]["finish_reason"] for e in events[:-1] if e["choices"]]
    assert finishes[-1] == "length" and events[-1] == "[DONE]"
