"""The delta pipeline over fake deltas: no engine, no web request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from gateway.chat.tools import FORMATS
from gateway.generation import Delta, TokenLogprob
from gateway.openai.choices import plan_choices, total_usage
from gateway.openai.pipeline import choice_deltas, run_to_end
from gateway.openai.tools import ToolPlan
from schemas.responses import Usage
from tests.conftest import WordTokenizer, generation_request

CALL = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'


class FakeEngine:
    """(choice index, delta) pairs as the engine's stream_many gives them; notes when closed."""

    def __init__(self, deltas: list[tuple[int, Delta]]) -> None:
        self.deltas = deltas
        self.closed = False
        self.sent = 0

    async def stream(self) -> AsyncGenerator[tuple[int, Delta], None]:
        try:
            for pair in self.deltas:
                self.sent += 1
                yield pair
        finally:
            self.closed = True


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


def test_streamed_deltas_and_the_joined_answer_are_the_same() -> None:
    pieces = [
        Delta("Hel", None, 3, 1, [TokenLogprob("Hel", -0.5)]),
        Delta("lo", "stop", 3, 1, [TokenLogprob("lo", -1.0)]),
    ]
    engine = FakeEngine([(0, piece) for piece in pieces])
    streamed_choices = plan_choices(generation_request(), ["p"], 1)

    async def stream() -> list[Delta]:
        return [delta async for _, delta in choice_deltas(engine.stream(), streamed_choices)]

    streamed = run(stream())
    joined = plan_choices(generation_request(), ["p"], 1)
    run(run_to_end(FakeEngine([(0, piece) for piece in pieces]).stream(), joined))
    for choice in (streamed_choices[0], joined[0]):
        assert (choice.text, choice.finish_reason) == ("Hello", "stop")
        assert [entry.token for entry in choice.logprobs or []] == ["Hel", "lo"]
    assert "".join(delta.text for delta in streamed) == joined[0].text
    assert total_usage(joined, None) == Usage(3, 2, 5)  # counted once, from the deltas


def test_the_tool_call_stage_rewrites_text_and_finish_on_both_roads() -> None:
    plan = ToolPlan(fmt=FORMATS["hermes"])
    halves = [CALL[:20], CALL[20:]]
    deltas = [(0, Delta(halves[0])), (0, Delta(halves[1], "stop"))]
    choices = plan_choices(generation_request(), ["p"], 1)
    run(run_to_end(FakeEngine(deltas).stream(), choices, [plan.stage]))
    [choice] = choices
    assert choice.finish_reason == "tool_calls" and choice.text == ""
    assert [(call.name, call.arguments) for call in choice.tool_calls] == [("get_weather", '{"city": "Paris"}')]


def test_a_stage_that_ends_every_choice_closes_the_engine_stream() -> None:
    """A call past the parse limit ends its choice with "length"; once every choice has ended,
    the pipeline stops reading, which cancels the requests on Triton."""
    plan = ToolPlan(fmt=FORMATS["hermes"], max_bytes=16)
    deltas = [(0, Delta(CALL[:30])), (0, Delta(CALL[30:60])), (0, Delta(CALL[60:], "stop"))]
    engine = FakeEngine(deltas)
    choices = plan_choices(generation_request(), ["p"], 1)
    run(run_to_end(engine.stream(), choices, [plan.stage]))
    assert choices[0].finish_reason == "length" and engine.closed and engine.sent < len(deltas)


def test_several_choices_each_get_their_own_stages_and_counts() -> None:
    plan = ToolPlan(fmt=FORMATS["hermes"])
    deltas = [(1, Delta("plain ", None)), (0, Delta(CALL, "stop")), (1, Delta("text", "stop"))]
    choices = plan_choices(generation_request(), ["a prompt"], 2)
    run(run_to_end(FakeEngine(deltas).stream(), choices, [plan.stage]))
    assert [choice.finish_reason for choice in choices] == ["tool_calls", "stop"]
    assert choices[1].text == "plain text" and not choices[1].tool_calls
    usage = total_usage(choices, WordTokenizer())
    assert usage is not None and usage.prompt_tokens == 2  # the prompt once, for two choices
