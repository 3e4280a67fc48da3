"""Reasoning formats and the reasoning stage over fake deltas: every split of the reply gives
what the whole reply gives; thinking is counted; what turns parsing off."""

from __future__ import annotations

import pytest

from gateway.generation import Delta
from gateway.openai.reasoning import ReasoningStage, reasoning_stage
from gateway.reasoning import FORMATS
from tests.conftest import WordTokenizer


def split_everywhere(fmt: str, text: str) -> set[tuple[str, str]]:
    """(thinking, answer) for the reply whole, cut once at every place, and char by char."""
    outcomes = set()
    cuts = [[text[:i], text[i:]] for i in range(len(text) + 1)] + [list(text)]
    for pieces in cuts:
        parser = FORMATS[fmt].parser()
        thinking = answer = ""
        for piece in pieces:
            more_thinking, more_answer = parser.feed(piece)
            thinking, answer = thinking + more_thinking, answer + more_answer
        last_thinking, last_answer = parser.finish()
        outcomes.add((thinking + last_thinking, answer + last_answer))
    return outcomes


@pytest.mark.parametrize(
    ("fmt", "reply", "expected"),
    [
        # R1: the template opened the thinking; an opening tag of its own is dropped too.
        ("deepseek_r1", "Let me add 2+2.</think>The answer is 4.", ("Let me add 2+2.", "The answer is 4.")),
        ("deepseek_r1", "<think>\nabc</think>\n\nrest", ("\nabc", "\n\nrest")),
        ("deepseek_r1", "a long thought, cut off", ("a long thought, cut off", "")),
        ("deepseek_r1", "</think>answer only", ("", "answer only")),
        ("qwen3", "<think>\nUser greets.\n</think>\n\nHello!", ("\nUser greets.\n", "\n\nHello!")),
        # Qwen3: a tool call during the thinking ends it; the call is the answer's.
        ("qwen3", "Need weather.\n<tool_call>{}</tool_call>", ("Need weather.\n", "<tool_call>{}</tool_call>")),
        # A tool call written inside the thinking by R1 is thinking, not a call.
        ("deepseek_r1", "<tool_call>{}</tool_call> no</think>ok", ("<tool_call>{}</tool_call> no", "ok")),
        (
            "granite",
            "Here is my thought process: The user wants X. Here is my response: X is 1",
            (" The user wants X. ", " X is 1"),
        ),
        ("granite", "Here's my thought process: hm. Here's my response: ok", (" hm. ", " ok")),
        ("granite", "No thinking here. Here is my response: fine", ("", "No thinking here. Here is my response: fine")),
    ],
)
def test_every_split_gives_what_the_whole_reply_gives(fmt: str, reply: str, expected: tuple[str, str]) -> None:
    assert split_everywhere(fmt, reply) == {expected}


def test_thinking_tokens_are_counted_per_delta() -> None:
    stage = ReasoningStage(FORMATS["deepseek_r1"].parser(), WordTokenizer())
    first = stage.feed(Delta("thinking hard", completion_tokens=2))
    assert (first.reasoning, first.text, first.reasoning_tokens) == ("thinking hard", "", 2)
    held = stage.feed(Delta(" </thi", completion_tokens=2))  # a marker may be coming: held back
    assert (held.reasoning, held.text, held.reasoning_tokens) == (" ", "", 2)
    boundary = stage.feed(Delta("nk> The answer", "stop", completion_tokens=3))
    # The rest of the closing marker is thinking's too (the held-back part came with its delta).
    assert (boundary.reasoning, boundary.text, boundary.reasoning_tokens) == ("", " The answer", 1)
    after = ReasoningStage(FORMATS["deepseek_r1"].parser(), WordTokenizer())
    whole = after.feed(Delta("one two three</think>four", "stop", completion_tokens=5))
    assert (whole.reasoning, whole.text, whole.reasoning_tokens) == ("one two three", "four", 3)


def test_what_turns_the_parsing_off() -> None:
    def parsed(fmt: str, kwargs: dict | None = None, prompt: str = "p", guided: bool = False, aware: bool = False):  # type: ignore[no-untyped-def]
        return reasoning_stage(fmt, kwargs, prompt, guided, aware, None)() is not None

    assert parsed("qwen3") and not parsed("qwen3", {"enable_thinking": False})
    assert not parsed("qwen3", prompt="<|im_start|>assistant\n<think>\n\n</think>\n\n")  # the template closed it
    assert parsed("deepseek_r1", prompt="<｜Assistant｜><think>\n")  # opened in the prompt: the reply thinks
    assert not parsed("deepseek_v3") and parsed("deepseek_v3", {"thinking": True})
    assert not parsed("deepseek_r1", guided=True)  # a guide from the first token: all answer
    assert parsed("deepseek_r1", guided=True, aware=True)  # vLLM guides the answer after the thinking
    assert reasoning_stage(None, None, "p", False, False, None)() is None


HARMONY_ANSWER = (
    "<|channel|>analysis<|message|>User says hi.<|end|><|start|>assistant<|channel|>final<|message|>Hello!<|return|>"
)
HARMONY_CALL = (
    "<|channel|>analysis<|message|>Need weather.<|end|>"
    "<|start|>assistant<|channel|>commentary<|message|>Checking…<|end|>"
    '<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Paris"}<|call|>'
)


def harmony_everywhere(text: str, calls: bool = True) -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    outcomes = set()
    for pieces in [[text[:i], text[i:]] for i in range(len(text) + 1)] + [list(text)]:
        parser = FORMATS["openai_gptoss"].parser(calls)  # type: ignore[call-arg]
        reasoning = content = ""
        made = []
        for out in [*(parser.feed(piece) for piece in pieces), parser.finish()]:
            reasoning, content = reasoning + out.reasoning, content + out.content
            for part in out.calls:  # a call's first part has its name; later ones more arguments
                if part.id:
                    made.append((part.name, part.arguments))
                else:
                    made[-1] = (made[-1][0], made[-1][1] + part.arguments)
        outcomes.add((reasoning, content, tuple(made)))
    return outcomes


def test_harmony_channels_split_the_same_however_the_text_is_cut() -> None:
    assert harmony_everywhere(HARMONY_ANSWER) == {("User says hi.", "Hello!", ())}
    called = {("Need weather.", "Checking…", (("get_weather", '{"city":"Paris"}'),))}
    assert harmony_everywhere(HARMONY_CALL) == called
    assert harmony_everywhere(HARMONY_CALL, calls=False) == {("Need weather.", "Checking…", ())}


def test_harmony_header_forms_and_endings() -> None:
    legacy = '<|channel|>analysis<|message|>a<|end|><|start|>assistant to=functions.f<|channel|>commentary json<|message|>{"x": 1}<|call|>'
    assert harmony_everywhere(legacy) == {("a", "", (("f", '{"x": 1}'),))}
    two_thoughts = "<|channel|>analysis<|message|>one<|end|><|start|>assistant<|channel|>analysis<|message|>two<|end|>"
    assert harmony_everywhere(two_thoughts + "<|start|>assistant<|channel|>final<|message|>ok") == {
        ("one\ntwo", "ok", ())
    }
    built_in = (
        "<|channel|>analysis<|message|>a<|end|><|start|>assistant<|channel|>commentary to=python<|message|>1+1<|call|>"
    )
    assert harmony_everywhere(built_in) == {("a", "", ())}
    cut_short = "<|channel|>analysis<|message|>still think"  # max_tokens: the message just ends
    assert harmony_everywhere(cut_short) == {("still think", "", ())}


def test_the_harmony_stage_ends_with_tool_calls_and_counts_the_thinking() -> None:
    stage = reasoning_stage("openai_gptoss", None, "p", False, False, WordTokenizer(), calls=True)()
    assert stage is not None
    delta = stage.feed(Delta(HARMONY_CALL, "stop", completion_tokens=30))
    assert (delta.reasoning, delta.text, delta.finish_reason) == ("Need weather.", "Checking…", "tool_calls")
    assert delta.tool_calls and delta.tool_calls[0].name == "get_weather"
    assert delta.reasoning_tokens is not None and 0 < delta.reasoning_tokens <= 30
