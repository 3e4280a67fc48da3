"""Reasoning models through a real tritonserver: the thinking in `reasoning_content` (and
`reasoning`), the answer in `content`, streamed as whole, counted in usage, read by clients."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import openai
import pytest
from langchain_deepseek import ChatDeepSeek

from gateway.app import create_app
from gateway.settings import Settings

MODEL = "vllm_reasoning"  # deepseek_r1 in the session's gateway; its engine guides after the thinking
THOUGHT = "The user greets me. I should greet back."
REPLY = f"/raw {THOUGHT}</think>Hello there!"


@pytest.fixture
def sdk(gateway_process: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway_process}/v1", api_key="not-needed", max_retries=0) as client:
        yield client


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def streamed(sdk: openai.OpenAI, **kwargs: Any) -> tuple[str, str, Any, str | None]:
    """(reasoning_content, content, usage, finish_reason) of a streamed answer, joined."""
    reasoning = content = ""
    usage = finish = None
    for chunk in sdk.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs):
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            extra = choice.delta.model_extra or {}
            assert extra.get("reasoning_content") == extra.get("reasoning")  # both names, same text
            reasoning += extra.get("reasoning_content") or ""
            content += choice.delta.content or ""
            finish = choice.finish_reason or finish
    return reasoning, content, usage, finish


def test_thinking_and_answer_are_apart_streamed_and_whole(sdk: openai.OpenAI) -> None:
    whole = sdk.chat.completions.create(model=MODEL, messages=user(REPLY), max_tokens=100)
    message = whole.choices[0].message
    extra = message.model_extra or {}
    assert (extra["reasoning_content"], extra["reasoning"], message.content) == (THOUGHT, THOUGHT, "Hello there!")
    assert whole.choices[0].finish_reason == "stop"
    assert whole.usage is not None and whole.usage.completion_tokens_details is not None
    thinking_tokens = whole.usage.completion_tokens_details.reasoning_tokens
    assert thinking_tokens is not None and 0 < thinking_tokens < whole.usage.completion_tokens

    reasoning, content, usage, finish = streamed(sdk, model=MODEL, messages=user(REPLY), max_tokens=100)
    assert (reasoning, content, finish) == (THOUGHT, "Hello there!", "stop")
    assert usage.completion_tokens == whole.usage.completion_tokens
    assert usage.completion_tokens_details.reasoning_tokens == thinking_tokens


def test_a_reply_cut_short_while_thinking_is_all_thinking(sdk: openai.OpenAI) -> None:
    answer = sdk.chat.completions.create(model=MODEL, messages=user(REPLY), max_tokens=5)
    message = answer.choices[0].message
    assert answer.choices[0].finish_reason == "length" and not message.content
    assert THOUGHT.startswith((message.model_extra or {})["reasoning_content"])


def test_a_tool_call_in_the_thinking_is_not_a_call(sdk: openai.OpenAI) -> None:
    call = '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>'
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    thought_only = sdk.chat.completions.create(
        model=MODEL, messages=user(f"/raw Maybe {call}?</think>No call needed."), tools=tools, max_tokens=120
    )
    message = thought_only.choices[0].message
    assert not message.tool_calls and message.content == "No call needed."
    assert (message.model_extra or {})["reasoning_content"] == f"Maybe {call}?"
    answered = sdk.chat.completions.create(
        model=MODEL, messages=user(f"/raw Weather is asked.</think>{call}"), tools=tools, max_tokens=120
    )
    [made] = answered.choices[0].message.tool_calls or []
    assert made.function.name == "get_weather" and json.loads(made.function.arguments) == {"city": "Oslo"}
    assert answered.choices[0].finish_reason == "tool_calls"


@pytest.fixture
async def reasoning_client(aiohttp_client, settings: Settings) -> AsyncIterator[openai.AsyncOpenAI]:  # type: ignore[no-untyped-def]
    """The gateway in-process with other parsers: qwen3 for the vLLM model, granite for the
    TensorRT-LLM ensemble; the openai SDK talks to it over loopback HTTP."""
    parsers = ("vllm_reasoning=qwen3", "vllm_model=deepseek_r1", "ensemble=granite")
    server = await aiohttp_client(create_app(replace(settings, reasoning_parser=parsers)))
    async with openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="x", max_retries=0) as client:
        yield client


async def test_structured_outputs_guide_the_answer_after_the_thinking(reasoning_client: openai.AsyncOpenAI) -> None:
    """vllm_reasoning's engine has a reasoning parser (model.json), so vLLM guides the answer only."""
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    answer = await reasoning_client.chat.completions.create(
        model=MODEL,
        messages=user("Give me a number"),
        response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": schema}},
        max_tokens=100,
    )
    message = answer.choices[0].message
    assert (message.model_extra or {})["reasoning_content"] == "The answer must follow the schema."
    assert isinstance(json.loads(message.content or "")["n"], int)


async def test_a_guide_without_a_reasoning_aware_engine_leaves_the_output_as_the_answer(
    reasoning_client: openai.AsyncOpenAI,
) -> None:
    """vllm_model's engine has no reasoning parser: the guide starts at the first token, so the
    gateway does not look for thinking in its output even with deepseek_r1 set for it."""
    answer = await reasoning_client.chat.completions.create(
        model="vllm_model", messages=user(REPLY), response_format={"type": "json_object"}, max_tokens=100
    )
    message = answer.choices[0].message
    assert json.loads(message.content or "") is not None
    assert "reasoning_content" not in (message.model_extra or {})
    unguided = await reasoning_client.chat.completions.create(model="vllm_model", messages=user(REPLY), max_tokens=100)
    assert unguided.choices[0].message.content == "Hello there!"


async def test_qwen3_thinks_unless_told_not_to(reasoning_client: openai.AsyncOpenAI) -> None:
    said = "/raw <think>\nShort.\n</think>\n\nHi!"
    thinking = await reasoning_client.chat.completions.create(model=MODEL, messages=user(said), max_tokens=100)
    message = thinking.choices[0].message
    assert ((message.model_extra or {})["reasoning_content"], message.content) == ("\nShort.\n", "\n\nHi!")
    plain = await reasoning_client.chat.completions.create(
        model=MODEL,
        messages=user("/raw Hi!"),
        max_tokens=100,
        extra_body={"chat_template_kwargs": {"enable_thinking": False}},
    )
    assert plain.choices[0].message.content == "Hi!"
    assert "reasoning_content" not in (plain.choices[0].message.model_extra or {})
    assert plain.usage is not None and plain.usage.completion_tokens_details is None


async def test_granite_phrases_on_a_tensorrt_llm_ensemble(reasoning_client: openai.AsyncOpenAI) -> None:
    said = "/raw Here is my thought process: Easy. Here is my response: Fine."
    whole = await reasoning_client.chat.completions.create(model="ensemble", messages=user(said), max_tokens=100)
    message = whole.choices[0].message
    assert ((message.model_extra or {})["reasoning_content"], message.content) == (" Easy. ", " Fine.")
    reasoning = content = ""
    stream = await reasoning_client.chat.completions.create(
        model="ensemble", messages=user(said), max_tokens=100, stream=True
    )
    async for chunk in stream:
        for choice in chunk.choices:
            reasoning += (choice.delta.model_extra or {}).get("reasoning_content") or ""
            content += choice.delta.content or ""
    assert (reasoning, content) == (" Easy. ", " Fine.")
    # Without the phrases, the same model's reply is all answer.
    plain = await reasoning_client.chat.completions.create(model="ensemble", messages=user("/raw Fine."))
    assert plain.choices[0].message.content == "Fine."


def test_langchain_reads_the_thinking(gateway_process: str) -> None:
    llm = ChatDeepSeek(model=MODEL, api_base=f"{gateway_process}/v1", api_key="not-needed", max_tokens=100)
    answer = llm.invoke(REPLY)
    assert answer.content == "Hello there!" and answer.additional_kwargs["reasoning_content"] == THOUGHT
    joined = None
    for chunk in llm.stream(REPLY):
        joined = chunk if joined is None else joined + chunk
    assert joined is not None and joined.content == "Hello there!"
    assert joined.additional_kwargs["reasoning_content"] == THOUGHT


HARMONY = (
    "<|channel|>analysis<|message|>Need the weather.<|end|>"
    "<|start|>assistant<|channel|>commentary<|message|>Checking.<|end|>"
    "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>"
    '{"city":"Oslo"}<|call|>'
)
WEATHER = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


@pytest.fixture
async def harmony_client(aiohttp_client, settings: Settings) -> AsyncIterator[openai.AsyncOpenAI]:  # type: ignore[no-untyped-def]
    """gpt-oss's harmony on the vLLM stand-in (a model with room for the markers' many tokens). Its scripted replies spell the markers, and the
    demo tokenizer's EOS is `<|end|>`, a special token: user text may hold it here."""
    gateway = replace(settings, reasoning_parser=("vllm_reasoning=openai_gptoss",), special_tokens_in_content="allow")
    server = await aiohttp_client(create_app(gateway))
    async with openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="x", max_retries=0) as client:
        yield client


async def test_harmony_channels_and_calls(harmony_client: openai.AsyncOpenAI) -> None:
    said = "/raw <|channel|>analysis<|message|>Greeting.<|end|><|start|>assistant<|channel|>final<|message|>Hi!"
    answer = await harmony_client.chat.completions.create(model=MODEL, messages=user(said), max_tokens=120)
    message = answer.choices[0].message
    assert ((message.model_extra or {})["reasoning_content"], message.content) == ("Greeting.", "Hi!")

    whole = await harmony_client.chat.completions.create(
        model=MODEL, messages=user(f"/raw {HARMONY}"), tools=WEATHER, max_tokens=300
    )
    message = whole.choices[0].message
    assert whole.choices[0].finish_reason == "tool_calls" and message.content == "Checking."
    assert (message.model_extra or {})["reasoning_content"] == "Need the weather."
    [call] = message.tool_calls or []
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Oslo"})

    stream = await harmony_client.chat.completions.create(
        model=MODEL, messages=user(f"/raw {HARMONY}"), tools=WEATHER, max_tokens=300, stream=True
    )
    reasoning = content = arguments = ""
    names, finish = [], None
    async for chunk in stream:
        for choice in chunk.choices:
            reasoning += (choice.delta.model_extra or {}).get("reasoning_content") or ""
            content += choice.delta.content or ""
            for part in choice.delta.tool_calls or []:
                names += [part.function.name] if part.function and part.function.name else []
                arguments += (part.function.arguments or "") if part.function else ""
            finish = choice.finish_reason or finish
    assert (reasoning, content, names, finish) == ("Need the weather.", "Checking.", ["get_weather"], "tool_calls")
    assert arguments == call.function.arguments
    # Without tools, a message to a function is not a call: it is left out.
    plain = await harmony_client.chat.completions.create(model=MODEL, messages=user(f"/raw {HARMONY}"), max_tokens=300)
    assert not plain.choices[0].message.tool_calls and plain.choices[0].finish_reason == "stop"
