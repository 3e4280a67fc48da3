"""Chat and completions rendering over fake deltas: the plan's choices go through the delta
pipeline and come out as frames or a response object; no engine, no web request."""

from __future__ import annotations

import asyncio
import json

import msgspec

from gateway.backends import generic
from gateway.chat.tools import FORMATS
from gateway.generation import Delta
from gateway.openai.chat import ChatPlan, chat_completion
from gateway.openai.choices import plan_choices, total_usage
from gateway.openai.completions import CompletionPlan, completion_response
from gateway.openai.pipeline import choice_deltas, run_to_end
from gateway.openai.reasoning import reasoning_stage
from gateway.openai.stops import stop_stage
from gateway.openai.tools import ToolPlan
from gateway.structured import StructuredOutput
from tests.conftest import generation_request
from tests.unit.test_pipeline import CALL, FakeEngine
from tests.unit.test_trtllm_adapter import model

MODEL = model({"text_input": "BYTES"}, generic.PLAIN_TEXT)


def chat_plan(
    n: int = 1, tools: ToolPlan | None = None, stop: tuple[str, ...] = (), reasoning: str | None = None
) -> ChatPlan:
    request = generation_request(stop=list(stop))
    return ChatPlan(
        id="chatcmpl-1",
        created=1,
        model_name="m",
        model=MODEL,
        choices=plan_choices(request, ["p"], n),
        tokenizer=None,
        tools=tools or ToolPlan(),
        stops=stop_stage(request, MODEL.flavour),
        reasoning=reasoning_stage(reasoning, None, "p", guided=False, guide_after_reasoning=False, tokenizer=None),
        structured=StructuredOutput(None),
        stream=False,
        stream_options=None,
    )


def test_a_chat_answer_streamed_and_whole_says_the_same() -> None:
    deltas = [(0, Delta("Hel", None, 4, 1)), (0, Delta("lo", "stop", 4, 1))]
    whole = chat_plan()
    asyncio.run(run_to_end(FakeEngine(deltas).stream(), whole.choices, whole.stages))
    body = json.loads(msgspec.json.encode(chat_completion(whole, total_usage(whole.choices, None))))
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello"}
    assert body["choices"][0]["finish_reason"] == "stop" and body["usage"]["total_tokens"] == 6

    streamed = chat_plan()
    formatter = streamed.formatter()

    async def frames() -> list[bytes]:
        out = []
        async for index, delta in choice_deltas(FakeEngine(deltas).stream(), streamed.choices, streamed.stages):
            out.append(formatter.chunk(index, delta))
        return out

    chunks = [
        json.loads(line[len(b"data: ") :]) for frame in asyncio.run(frames()) for line in frame.split(b"\n\n") if line
    ]
    assert "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in chunks) == "Hello"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_thinking_renders_under_both_names_and_is_counted() -> None:
    deltas = [(0, Delta("Hmm.", None, 4, 2)), (0, Delta("</think>Hi", None, None, 2)), (0, Delta("", "stop", None, 1))]
    whole = chat_plan(reasoning="deepseek_r1")
    asyncio.run(run_to_end(FakeEngine(deltas).stream(), whole.choices, whole.stages))
    body = json.loads(msgspec.json.encode(chat_completion(whole, total_usage(whole.choices, None))))
    message = body["choices"][0]["message"]
    assert (message["content"], message["reasoning_content"], message["reasoning"]) == ("Hi", "Hmm.", "Hmm.")
    assert body["usage"]["completion_tokens"] == 5 and "completion_tokens_details" in body["usage"]

    streamed = chat_plan(reasoning="deepseek_r1")
    formatter = streamed.formatter()

    async def frames() -> list[dict]:
        out = []
        async for index, delta in choice_deltas(FakeEngine(deltas).stream(), streamed.choices, streamed.stages):
            for line in formatter.chunk(index, delta).split(b"\n\n"):
                if line:
                    out.append(json.loads(line.removeprefix(b"data: "))["choices"][0]["delta"])
        return out

    parts = asyncio.run(frames())
    assert "".join(part.get("reasoning_content", "") for part in parts) == "Hmm."
    assert "".join(part.get("content", "") for part in parts) == "Hi"
    assert all(part.get("reasoning") == part.get("reasoning_content") for part in parts)
    plain = chat_plan()
    asyncio.run(run_to_end(FakeEngine(deltas).stream(), plain.choices, plain.stages))
    plain_body = json.loads(msgspec.json.encode(chat_completion(plain, total_usage(plain.choices, None))))
    assert "reasoning_content" not in plain_body["choices"][0]["message"]
    assert "completion_tokens_details" not in plain_body["usage"]


def test_stop_strings_end_the_answer_the_same_way_streamed_and_whole() -> None:
    deltas = [(0, Delta("Hello E", None, 4, 2)), (0, Delta("ND and more", None, 4, 3)), (0, Delta("", "length"))]
    whole = chat_plan(stop=("END",))
    asyncio.run(run_to_end(FakeEngine(deltas).stream(), whole.choices, whole.stages))
    answer = chat_completion(whole, total_usage(whole.choices, None))
    assert (answer.choices[0].message.content, answer.choices[0].finish_reason) == ("Hello ", "stop")
    assert answer.usage is not None and answer.usage.completion_tokens == 5

    async def streamed_text() -> tuple[str, str | None]:
        plan = chat_plan(stop=("END",))
        passed = [delta async for _, delta in choice_deltas(FakeEngine(deltas).stream(), plan.choices, plan.stages)]
        return "".join(delta.text for delta in passed), passed[-1].finish_reason

    assert asyncio.run(streamed_text()) == ("Hello ", "stop")


def test_tool_calls_render_as_calls_with_no_content() -> None:
    plan = chat_plan(tools=ToolPlan(fmt=FORMATS["hermes"]))
    asyncio.run(run_to_end(FakeEngine([(0, Delta(CALL, "stop"))]).stream(), plan.choices, plan.stages))
    [choice] = json.loads(msgspec.json.encode(chat_completion(plan, None)))["choices"]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}


def test_best_of_shows_the_best_n_candidates_and_counts_them_all() -> None:
    choices = plan_choices(generation_request(cumulative_logprob=True), ["p"], 3)
    plan = CompletionPlan(
        id="cmpl-1", created=1, model_name="m", model=MODEL, choices=choices, n=1, best_of=3, echo=False,
        tokenizer=None, stops=stop_stage(choices[0].request, MODEL.flavour), structured=StructuredOutput(None),
        stream=False, stream_options=None,
    )  # fmt: skip
    deltas = [
        (index, Delta(f"answer {index}", "stop", 2, 2, cumulative_logprob=-float(3 - index))) for index in range(3)
    ]
    asyncio.run(run_to_end(FakeEngine(deltas).stream(), plan.choices))
    body = json.loads(msgspec.json.encode(completion_response(plan, total_usage(plan.choices, None))))
    assert [choice["text"] for choice in body["choices"]] == ["answer 2"]
    assert body["usage"]["completion_tokens"] == 6
