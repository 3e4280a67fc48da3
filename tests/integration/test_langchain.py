"""A LangChain ChatOpenAI tool-calling round trip, as agents run it."""

from __future__ import annotations

import json

from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI


@tool
def get_weather(city: str, days: int) -> str:
    """The weather in a city for the next days."""
    return f"Sunny in {city} for {days} days"


def test_tool_call_round_trip(gateway_process: str) -> None:
    llm = ChatOpenAI(
        model="vllm_model", base_url=f"{gateway_process}/v1", api_key="not-needed", temperature=0, max_tokens=120
    ).bind_tools([get_weather])
    call = '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo", "days": 2}}</tool_call>'
    question = HumanMessage("/raw " + call)
    answer = llm.invoke([question])
    [tool_call] = answer.tool_calls
    assert tool_call["name"] == "get_weather" and tool_call["args"] == {"city": "Oslo", "days": 2}

    streamed = None
    for chunk in llm.stream([question]):
        streamed = chunk if streamed is None else streamed + chunk
    assert streamed is not None and [(c["name"], c["args"]) for c in streamed.tool_calls] == [
        ("get_weather", {"city": "Oslo", "days": 2})
    ]

    result = get_weather.invoke(tool_call["args"])
    follow_up = llm.invoke(
        [question, answer, ToolMessage(result, tool_call_id=tool_call["id"]), HumanMessage("Thanks!")]
    )
    assert follow_up.content == "You said: Thanks!" and not follow_up.tool_calls
    assert json.loads(json.dumps(follow_up.response_metadata))["finish_reason"] == "stop"


def test_a_forced_call_cut_short_is_no_content(gateway_process: str) -> None:
    """tool_choice "required" with a small max_tokens: the guided JSON the limit cut is a
    (partial) call, finish_reason "length", never the raw JSON as content."""
    llm = ChatOpenAI(model="vllm_model", base_url=f"{gateway_process}/v1", api_key="not-needed", max_tokens=30)
    forced = llm.bind_tools([get_weather], tool_choice="required")
    answer = forced.invoke([HumanMessage("Weather in Oslo for 2 days?")])
    assert answer.content == ""
    assert [call["name"] for call in [*answer.tool_calls, *answer.invalid_tool_calls]] == ["get_weather"]
    assert answer.response_metadata["finish_reason"] == "length"
    streamed = None
    for chunk in forced.stream([HumanMessage("Weather in Oslo for 2 days?")]):
        streamed = chunk if streamed is None else streamed + chunk
    assert streamed is not None and streamed.content == ""
    assert [call["name"] for call in [*streamed.tool_calls, *streamed.invalid_tool_calls]] == ["get_weather"]
