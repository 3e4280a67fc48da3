"""The Responses rendering without a web request: input items to chat messages (and errors
back to this API's field names), and the output builder over fake deltas, where every split
of a choice's deltas ends in the same items as the joined delta."""

from __future__ import annotations

import itertools

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import InvalidRequest
from gateway.generation import Delta, ToolCall
from gateway.openai.response_input import chat_input, input_items, output_as_input
from gateway.openai.response_output import OutputBuilder
from schemas.responses_api import FunctionCallOutput, OutputMessage, ReasoningOutput


def test_input_items_get_ids_and_become_chat_turns() -> None:
    items = input_items(
        [
            {"role": "user", "content": "weather?"},
            {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "w", "arguments": '{"a":1}', "id": "fc_given"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"role": "developer", "content": [{"type": "input_text", "text": "be brief"}]},
        ]
    )
    assert [item.id[:3] for item in items] == ["msg", "fc_", "fc_", "fco", "rs_", "msg"]
    assert items[2].id == "fc_given"
    conversation = chat_input(items, "You help.")
    roles = [message.role for message in conversation.messages]
    assert roles == ["system", "user", "assistant", "tool", "developer"]  # two calls, one turn; no reasoning
    assert [call["id"] for call in conversation.messages[2].tool_calls or ()] == ["c1", "c2"]
    assert conversation.origins == ["instructions", "input[0]", "input[1]", "input[3]", "input[5]"]


def test_chat_errors_are_named_in_this_apis_fields() -> None:
    items = input_items([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    conversation = chat_input(items, "sys", inherited=1)
    cases = {
        "messages[2].content[0].image_url.url": "input[0].content[0].image_url",
        "messages[1].content": "previous_response_id",
        "messages[0].content": "instructions",
        "response_format.json_schema.schema": "text.format.schema",
        "tools[3].function.parameters": "tools[3].parameters",
        "tool_choice.function.name": "tool_choice.name",
        "max_completion_tokens": "max_output_tokens",
        "model": "model",
    }
    for chat_param, param in cases.items():
        error = conversation.translated(InvalidRequest(f"Bad {chat_param}.", param=chat_param))
        assert (error.param, error.message) == (param, f"Bad {param}.")


def test_input_errors_name_the_item() -> None:
    with pytest.raises(InvalidRequest) as refused:
        input_items([{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}])
    assert refused.value.param == "input[1].role"
    with pytest.raises(InvalidRequest) as refused:
        input_items([{"type": "computer_call_output"}])
    assert refused.value.param == "input[0].type" and refused.value.code == "unsupported_parameter"
    with pytest.raises(InvalidRequest) as refused:
        chat_input(input_items([{"type": "reasoning", "id": "rs_1"}]), "only instructions")
    assert refused.value.param == "input"


def test_a_stored_output_goes_back_in_as_input() -> None:
    builder = OutputBuilder()
    builder.feed(Delta("Hi", reasoning="hm", tool_calls=[ToolCall(0, "call_1", "f", '{"a":1}')]))
    builder.finish("completed")
    items = output_as_input(builder.items)
    assert [type(item).__name__ for item in items] == ["ReasoningItem", "MessageItem", "FunctionCallItem"]
    messages = chat_input(items, None).messages
    assert [m.role for m in messages] == ["assistant"]  # the text and the call: one assistant turn
    assert messages[0].tool_calls and messages[0].tool_calls[0]["function"]["arguments"] == '{"a":1}'


def _summary(items: list) -> list:  # type: ignore[type-arg]
    summary = []
    for item in items:
        if isinstance(item, OutputMessage):
            summary.append(("message", "".join(part.text for part in item.content), item.status))
        elif isinstance(item, ReasoningOutput):
            summary.append(("reasoning", "".join(part.text for part in item.content), item.status))
        else:
            assert isinstance(item, FunctionCallOutput)
            summary.append(("call", item.call_id, item.name, item.arguments, item.status))
    return summary


def _parts(text: str, cuts: list[int]) -> list[str]:
    points = sorted({0, len(text), *(cut % (len(text) + 1) for cut in cuts)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


@given(st.lists(st.integers(min_value=0, max_value=200), max_size=8))
def test_every_split_builds_the_joined_items(cuts: list[int]) -> None:
    reasoning, text, arguments = "Let me think.", " The answer: ", '{"city": "Oslo", "n": 2}'
    deltas = [Delta("", reasoning=part) for part in _parts(reasoning, cuts)]
    deltas += [Delta(part) for part in _parts(text, cuts)]
    pieces = _parts(arguments, cuts)
    deltas.append(Delta("", tool_calls=[ToolCall(0, "call_1", "get_weather", pieces[0])]))
    deltas += [Delta("", tool_calls=[ToolCall(0, "", "", piece)]) for piece in pieces[1:]]
    streamed = OutputBuilder()
    events = [event for delta in deltas for event in streamed.feed(delta)]
    events += streamed.finish("completed")
    joined = OutputBuilder()
    joined.feed(Delta(text, reasoning=reasoning, tool_calls=[ToolCall(0, "call_1", "get_weather", arguments)]))
    joined.finish("completed")
    assert (
        _summary(streamed.items)
        == _summary(joined.items)
        == [
            ("reasoning", reasoning, "completed"),
            ("message", text, "completed"),
            ("call", "call_1", "get_weather", arguments, "completed"),
        ]
    )
    kinds = [type(event).__struct_config__.tag for event in events]
    assert kinds.count("response.output_item.added") == kinds.count("response.output_item.done") == 3
    argument_deltas = [
        event.delta for event in events if kinds[events.index(event)] == "response.function_call_arguments.delta"
    ]  # type: ignore[union-attr]
    assert "".join(argument_deltas) == arguments


def test_blank_text_before_a_call_opens_no_message() -> None:
    builder = OutputBuilder()
    builder.feed(Delta("\n"))
    builder.feed(Delta("", tool_calls=[ToolCall(0, "call_1", "f", "{}")]))
    builder.finish("completed")
    assert [type(item).__name__ for item in builder.items] == ["FunctionCallOutput"]
    empty = OutputBuilder()
    empty.finish("incomplete")
    assert _summary(empty.items) == [("message", "", "incomplete")]  # an answer always has its message
    blank = OutputBuilder()
    blank.feed(Delta(" "))
    blank.finish("completed")
    assert _summary(blank.items) == [("message", " ", "completed")]


def test_events_carry_snapshots_not_the_builders_items() -> None:
    builder = OutputBuilder()
    [added, _, _] = builder.feed(Delta("Hi"))
    builder.finish("completed")
    encoded = msgspec.json.decode(msgspec.json.encode(added))
    assert encoded["item"]["status"] == "in_progress" and encoded["item"]["content"] == []
