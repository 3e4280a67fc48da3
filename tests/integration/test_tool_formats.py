"""Every tool-call format through a real tritonserver (the stand-in repeats a scripted reply):
the calls whole and streamed, the arguments streaming in pieces that join to the whole ones."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import openai
import pytest

from gateway.app import create_app
from gateway.chat.tools import FORMATS
from gateway.settings import Settings
from tests.conftest import user
from tests.integration.test_tools import TOOLS

MODEL = "vllm_reasoning"  # room in its context for the markers' many stand-in tokens
ARGS = {"city": "Paris", "days": 2}
WEATHER_JSON = json.dumps(ARGS)
OUTPUTS: dict[str, tuple[str, list[tuple[str, dict[str, Any]]]]] = {
    "hermes": (
        f'<tool_call>{{"name": "get_weather", "arguments": {WEATHER_JSON}}}</tool_call>',
        [("get_weather", ARGS)],
    ),
    "mistral": (  # v11+ tokenizers: one [TOOL_CALLS] per call
        f'[TOOL_CALLS]get_weather[ARGS]{WEATHER_JSON}[TOOL_CALLS]get_time[ARGS]{{"zone": "UTC"}}',
        [("get_weather", ARGS), ("get_time", {"zone": "UTC"})],
    ),
    "granite": (f'<|tool_call|>[{{"name": "get_weather", "arguments": {WEATHER_JSON}}}]', [("get_weather", ARGS)]),
    "pythonic": (
        '[get_weather(city="Paris", days=2), get_time(zone="CET")]',
        [("get_weather", ARGS), ("get_time", {"zone": "CET"})],
    ),
    "qwen3_coder": (
        (
            "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n2\n"
            "</parameter>\n</function>\n</tool_call>"
        ),
        [("get_weather", ARGS)],  # days typed by the tool's schema (integer)
    ),
    "deepseek_v3": (
        (
            "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n"
            f"{WEATHER_JSON}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>"
        ),
        [("get_weather", ARGS)],
    ),
    "kimi_k2": (
        (
            "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>"
            f"{WEATHER_JSON}<|tool_call_end|><|tool_calls_section_end|>"
        ),
        [("get_weather", ARGS)],
    ),
}


async def client_for(aiohttp_client, settings: Settings, parser: str) -> openai.AsyncOpenAI:  # type: ignore[no-untyped-def]
    gateway = replace(settings, tool_call_parser=(f"{MODEL}={parser}",), reasoning_parser=())
    server = await aiohttp_client(create_app(gateway))
    return openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="x", max_retries=0)


def test_every_format_is_covered() -> None:
    assert set(OUTPUTS) | {"llama3"} == set(FORMATS)  # llama3: tests/integration/test_tools.py


@pytest.mark.parametrize("parser", list(OUTPUTS))
async def test_each_format_whole_and_streamed(aiohttp_client, settings: Settings, parser: str) -> None:  # type: ignore[no-untyped-def]
    output, expected = OUTPUTS[parser]
    async with await client_for(aiohttp_client, settings, parser) as sdk:
        ask: dict[str, Any] = {"model": MODEL, "messages": user(f"/raw {output}"), "tools": TOOLS, "max_tokens": 400}
        whole = await sdk.chat.completions.create(**ask)
        choice = whole.choices[0]
        calls = choice.message.tool_calls or []
        assert [(call.function.name, json.loads(call.function.arguments)) for call in calls] == expected
        assert choice.finish_reason == "tool_calls" and not (choice.message.content or "").strip()

        streamed: dict[int, dict[str, Any]] = {}
        finish = None
        async for chunk in await sdk.chat.completions.create(stream=True, **ask):
            for streamed_choice in chunk.choices:
                finish = streamed_choice.finish_reason or finish
                for part in streamed_choice.delta.tool_calls or []:
                    if part.id:  # a call's first piece: id, type and name, before any argument
                        assert part.index not in streamed and part.function and part.function.name
                        streamed[part.index] = {"name": part.function.name, "pieces": []}
                    elif part.function and part.function.arguments:
                        streamed[part.index]["pieces"].append(part.function.arguments)
        assert finish == "tool_calls"
        assert [(call["name"], "".join(call["pieces"])) for call in streamed.values()] == [
            (call.function.name, call.function.arguments) for call in calls
        ]
        if parser != "pythonic":  # pythonic arguments go out when each call closes
            assert all(len(call["pieces"]) > 1 for call in streamed.values())  # as they are generated


async def test_auto_reads_the_format_from_the_chat_template(aiohttp_client, settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from standin.tokenizer.build import CHAT_TEMPLATE

    template = tmp_path / "template.jinja"
    template.write_text(CHAT_TEMPLATE + '{% if tools %}Call a tool as <tool_call>{"name": …}</tool_call>.{% endif %}')
    gateway = replace(settings, tool_call_parser=("vllm_model=auto",), chat_template=template)
    server = await aiohttp_client(create_app(gateway))
    async with openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="x", max_retries=0) as sdk:
        output, expected = OUTPUTS["hermes"]
        reply = await sdk.chat.completions.create(
            model="vllm_model", messages=user(f"/raw {output}"), tools=TOOLS, max_tokens=120
        )
        calls = reply.choices[0].message.tool_calls or []
        assert [(call.function.name, json.loads(call.function.arguments)) for call in calls] == expected

    plain = await aiohttp_client(create_app(replace(settings, tool_call_parser=("vllm_model=auto",))))
    async with openai.AsyncOpenAI(base_url=str(plain.make_url("/v1")), api_key="x", max_retries=0) as sdk:
        with pytest.raises(openai.BadRequestError) as refused:  # the demo template writes no calls
            await sdk.chat.completions.create(model="vllm_model", messages=user("hi"), tools=TOOLS, max_tokens=20)
        assert "--tool-call-parser" in str(refused.value)
