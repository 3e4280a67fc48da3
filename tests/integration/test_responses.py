"""POST /v1/responses through a real tritonserver, with the openai SDK: plain and streamed
answers (the typed events in order, numbered, adding up to the final response), stored
responses (retrieve, delete, input_items, previous_response_id conversations, one API key's
responses hidden from another), function-tool round trips, structured text, reasoning items,
a cut-off answer, and errors that name this API's fields."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.settings import Settings

MODEL = "vllm_model"  # hermes tool calls in the session's settings
CALL = '/raw <tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>'
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
KEYS = ("key-one", "key-two")


@pytest.fixture
async def server(aiohttp_client: Any, settings: Settings) -> TestClient:
    return await aiohttp_client(create_app(replace(settings, api_keys=KEYS)))


@pytest.fixture
async def sdk(server: TestClient) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key=KEYS[0], max_retries=0) as client:
        yield client


@pytest.fixture
async def other_key(server: TestClient) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key=KEYS[1], max_retries=0) as client:
        yield client


async def test_a_plain_response_is_stored_and_retrieved(sdk: openai.AsyncOpenAI) -> None:
    response = await sdk.responses.create(
        model=MODEL, temperature=0, input="Hello there", metadata={"case": "plain"}, user="u1"
    )
    assert response.status == "completed" and response.error is None
    assert response.output_text == "You said: Hello there"
    [message] = response.output
    assert message.type == "message" and message.status == "completed" and message.id.startswith("msg_")
    assert response.id.startswith("resp_") and response.model == MODEL and response.metadata == {"case": "plain"}
    assert response.usage is not None and response.usage.input_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    stored = await sdk.responses.retrieve(response.id)
    assert stored.model_dump() == response.model_dump()
    items = await sdk.responses.input_items.list(response.id)
    [item] = items.data
    assert item.type == "message" and item.role == "user"  # type: ignore[union-attr]


async def test_instructions_and_a_list_of_input_items(sdk: openai.AsyncOpenAI) -> None:
    response = await sdk.responses.create(
        model=MODEL,
        temperature=0,
        instructions="Be brief.",
        input=[
            {"role": "user", "content": "first"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "You said: first"}]},
            {"role": "user", "content": [{"type": "input_text", "text": "second"}]},
        ],
        max_output_tokens=40,
    )
    assert response.output_text == "You said: second" and response.instructions == "Be brief."


async def test_the_stream_is_the_response_told_in_numbered_events(sdk: openai.AsyncOpenAI) -> None:
    events = [
        event
        async for event in await sdk.responses.create(model=MODEL, temperature=0, input="Hello there", stream=True)
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    kinds = [event.type for event in events]
    assert kinds[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert len(deltas) > 1  # streamed as generated
    final = events[-1].response  # type: ignore[union-attr]
    assert "".join(deltas) == final.output_text == "You said: Hello there"
    assert events[0].response.status == "in_progress" and final.status == "completed"  # type: ignore[union-attr]
    assert (await sdk.responses.retrieve(final.id)).model_dump() == final.model_dump()


async def test_the_sdk_stream_helper(sdk: openai.AsyncOpenAI) -> None:
    async with sdk.responses.stream(model=MODEL, temperature=0, input="Hello there") as stream:
        texts = [event.delta async for event in stream if event.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(texts) == final.output_text == "You said: Hello there"


async def test_a_conversation_by_previous_response_id(sdk: openai.AsyncOpenAI) -> None:
    first = await sdk.responses.create(model=MODEL, temperature=0, input="My name is Ada", instructions="Be kind.")
    alone = await sdk.responses.create(model=MODEL, temperature=0, input="What is my name?", store=False)
    second = await sdk.responses.create(
        model=MODEL, temperature=0, input="What is my name?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id and second.output_text == "You said: What is my name?"
    assert second.instructions is None  # instructions are not carried over, as OpenAI does
    assert second.usage and alone.usage and first.usage
    # the earlier turn and its answer went into the prompt (its instructions did not)
    assert second.usage.input_tokens > alone.usage.input_tokens + first.usage.output_tokens
    items = await sdk.responses.input_items.list(second.id, order="asc")
    texts = [(item.role, _text(item)) for item in items.data]  # type: ignore[union-attr]
    assert texts == [
        ("user", "My name is Ada"),
        ("assistant", "You said: My name is Ada"),
        ("user", "What is my name?"),
    ]
    page = await sdk.responses.input_items.list(second.id, limit=2)
    assert [_text(item) for item in page.data] == ["What is my name?", "You said: My name is Ada"] and page.has_more
    rest = await sdk.responses.input_items.list(second.id, limit=2, after=page.data[-1].id)  # type: ignore[arg-type]
    assert [_text(item) for item in rest.data] == ["My name is Ada"] and not rest.has_more


def _text(item: Any) -> str:
    return item.content if isinstance(item.content, str) else "".join(part.text for part in item.content)


async def test_one_keys_responses_are_hidden_from_another(
    sdk: openai.AsyncOpenAI, other_key: openai.AsyncOpenAI
) -> None:
    mine = await sdk.responses.create(model=MODEL, temperature=0, input="secret")
    with pytest.raises(openai.NotFoundError):
        await other_key.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        await other_key.responses.delete(mine.id)
    with pytest.raises(openai.NotFoundError):
        await other_key.responses.input_items.list(mine.id)
    with pytest.raises(openai.BadRequestError) as refused:
        await other_key.responses.create(model=MODEL, input="and?", previous_response_id=mine.id)
    assert refused.value.body["param"] == "previous_response_id"  # type: ignore[index]
    assert (await sdk.responses.retrieve(mine.id)).id == mine.id  # still there for its owner


async def test_delete_and_store_false(sdk: openai.AsyncOpenAI) -> None:
    response = await sdk.responses.create(model=MODEL, temperature=0, input="forget me")
    await sdk.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.delete(response.id)
    unstored = await sdk.responses.create(model=MODEL, temperature=0, input="not kept", store=False)
    assert unstored.store is False
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.retrieve(unstored.id)


async def test_a_function_tool_round_trip(sdk: openai.AsyncOpenAI) -> None:
    called = await sdk.responses.create(model=MODEL, temperature=0, input=CALL, tools=[WEATHER])  # type: ignore[list-item]
    [call] = called.output
    assert call.type == "function_call" and call.name == "get_weather" and call.status == "completed"
    assert json.loads(call.arguments) == {"city": "Oslo"} and call.call_id and call.id.startswith("fc_")  # type: ignore[union-attr]
    assert called.status == "completed" and called.tools[0].name == "get_weather"  # type: ignore[union-attr]
    result = {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21 C"}
    answered = await sdk.responses.create(
        model=MODEL,
        input=[result],
        tools=[WEATHER],
        previous_response_id=called.id,  # type: ignore[list-item]
    )
    assert answered.output_text == "The tool said: Sunny, 21 C"
    # the same, stateless: the call sent back as an input item
    stateless = await sdk.responses.create(
        model=MODEL,
        temperature=0,
        input=[{"role": "user", "content": CALL}, call.model_dump(exclude_none=True), result],  # type: ignore[list-item]
        tools=[WEATHER],  # type: ignore[list-item]
        store=False,
    )
    assert stateless.output_text == "The tool said: Sunny, 21 C"


async def test_streamed_call_arguments_add_up(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.responses.create(model=MODEL, temperature=0, input=CALL, tools=[WEATHER], stream=True)  # type: ignore[list-item]
    events = [event async for event in stream]
    added = [event for event in events if event.type == "response.output_item.added"]
    assert [event.item.type for event in added] == ["function_call"]
    assert added[0].item.name == "get_weather"  # type: ignore[union-attr]
    deltas = "".join(event.delta for event in events if event.type == "response.function_call_arguments.delta")
    [done] = [event for event in events if event.type == "response.function_call_arguments.done"]
    assert deltas == done.arguments and json.loads(deltas) == {"city": "Oslo"}
    final = events[-1].response  # type: ignore[union-attr]
    assert events[-1].type == "response.completed" and final.output[0].arguments == deltas  # type: ignore[union-attr]


async def test_a_forced_call_and_tool_choice_none(sdk: openai.AsyncOpenAI) -> None:
    forced = await sdk.responses.create(
        model=MODEL,
        temperature=0,
        input="Weather in Oslo?",
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "function", "name": "get_weather"},
    )
    [call] = forced.output
    assert call.type == "function_call" and call.name == "get_weather" and json.loads(call.arguments)  # type: ignore[union-attr]
    plain = await sdk.responses.create(model=MODEL, temperature=0, input="Hello", tools=[WEATHER], tool_choice="none")  # type: ignore[list-item]
    assert plain.output_text == "You said: Hello"


async def test_structured_text(sdk: openai.AsyncOpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "required": ["n"],
        "additionalProperties": False,
    }
    response = await sdk.responses.create(
        model=MODEL,
        temperature=0,
        input="Give me a number",
        text={"format": {"type": "json_schema", "name": "number", "schema": schema, "strict": True}},
    )
    assert isinstance(json.loads(response.output_text)["n"], int)
    assert response.text.format.type == "json_schema"  # type: ignore[union-attr]


async def test_a_cut_off_answer_is_incomplete(sdk: openai.AsyncOpenAI) -> None:
    response = await sdk.responses.create(
        model=MODEL, temperature=0, input="Hello there, how are you?", max_output_tokens=3
    )
    assert response.status == "incomplete" and response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens" and response.output[0].status == "incomplete"  # type: ignore[union-attr]
    assert response.usage is not None and response.usage.output_tokens == 3
    stream = await sdk.responses.create(
        model=MODEL, temperature=0, input="Hello there", max_output_tokens=3, stream=True
    )
    events = [event async for event in stream]
    assert events[-1].type == "response.incomplete" and events[-1].response.output_text == response.output_text  # type: ignore[union-attr]


async def test_reasoning_items(sdk: openai.AsyncOpenAI) -> None:
    thought = "The user greets me. I should greet back."
    response = await sdk.responses.create(model="vllm_reasoning", input=f"/raw {thought}</think>Hello there!")
    kinds = [item.type for item in response.output]
    assert kinds == ["reasoning", "message"] and response.output_text == "Hello there!"
    assert response.output[0].content[0].text == thought  # type: ignore[union-attr, index]
    assert response.usage is not None and response.usage.output_tokens_details.reasoning_tokens > 0
    stream = await sdk.responses.create(
        model="vllm_reasoning", input=f"/raw {thought}</think>Hello there!", stream=True
    )
    events = [event async for event in stream]
    thinking = "".join(event.delta for event in events if event.type == "response.reasoning_text.delta")
    assert thinking == thought
    final = events[-1].response  # type: ignore[union-attr]
    assert [item.type for item in final.output] == kinds and final.output_text == "Hello there!"
    follow_up = await sdk.responses.create(model="vllm_reasoning", input="And?", previous_response_id=response.id)
    assert follow_up.status == "completed"  # a reasoning item goes back in as input (and out of the prompt)


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"input": [{"type": "item_reference", "id": "x"}]}, 400, "input[0].type"),
        ({"input": [{"role": "user", "content": "a"}, {"role": "user"}]}, 400, "input[1].content"),
        ({"input": [{"role": "user", "content": [{"type": "input_text"}]}]}, 400, "input[0].content[0].text"),
        ({"input": []}, 400, "input"),
        ({"previous_response_id": "resp_nope"}, 400, "previous_response_id"),
        ({"tools": [{"type": "web_search"}]}, 400, "tools[0].type"),
        ({"tools": [{"type": "function", "name": "x y"}]}, 400, "tools[0].name"),
        ({"tools": [{"type": "function", "name": "f", "parameters": {"type": "thing"}}]}, 400, "tools[0].parameters"),
        ({"text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": 3}}}}, 400, "text.format.schema"),
        ({"tool_choice": {"type": "function", "name": "nope"}, "tools": [WEATHER]}, 400, "tool_choice"),
        ({"background": True}, 400, "background"),
        ({"max_output_tokens": 0}, 400, "max_output_tokens"),
        ({"model": "nope"}, 404, "model"),
    ],
)
async def test_errors_name_this_apis_fields(server: TestClient, body: dict[str, Any], status: int, param: str) -> None:
    payload = {"model": MODEL, "input": "hi", **body}
    response = await server.post("/v1/responses", json=payload, headers={"Authorization": f"Bearer {KEYS[0]}"})
    assert response.status == status, await response.text()
    error = (await response.json())["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == param, error


async def test_the_routes_need_a_key(server: TestClient) -> None:
    for method, path in (("POST", "/v1/responses"), ("GET", "/v1/responses/x"), ("DELETE", "/v1/responses/x")):
        response = await server.request(method, path, json={"model": MODEL, "input": "hi"})
        assert response.status == 401, (method, path)
    long_id = "resp_" + "x" * 5000
    response = await server.get(f"/v1/responses/{long_id}", headers={"Authorization": f"Bearer {KEYS[0]}"})
    assert response.status == 404 and long_id not in await response.text()


async def test_an_openai_agents_sdk_agent_with_one_function_tool(
    sdk: openai.AsyncOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_AGENTS_DISABLE_TRACING", "1")  # its traces would go to api.openai.com
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)
    looked_up: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        looked_up.append(city)
        return f"Sunny in {city}"

    agent = Agent(
        name="weather",
        instructions="Answer with the weather.",
        tools=[get_weather],
        model=OpenAIResponsesModel(MODEL, sdk),
    )
    result = await Runner.run(agent, CALL, max_turns=4)
    assert looked_up == ["Oslo"]
    assert result.final_output == "The tool said: Sunny in Oslo"


async def test_a_generation_that_fails_midway(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as failed:
        await sdk.responses.create(model=MODEL, input="/fail please", temperature=0, max_output_tokens=40)
    assert failed.value.body["code"] == "backend_error"  # type: ignore[index]
    stream = await sdk.responses.create(model=MODEL, input="/fail please", temperature=0, stream=True)
    events = [event async for event in stream]
    assert any(event.type == "response.output_text.delta" for event in events)  # it failed after some text
    last = events[-1]
    assert last.type == "response.failed" and last.response.status == "failed"  # type: ignore[union-attr]
    assert last.response.error is not None and last.response.error.code == "backend_error"  # type: ignore[union-attr]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    with pytest.raises(openai.NotFoundError):  # a failed response is not stored
        await sdk.responses.retrieve(last.response.id)  # type: ignore[union-attr]
