"""The reasoning stage of a choice's deltas: the model's thinking moves from `text` to
`reasoning` (rendered as `reasoning_content` and `reasoning`), the answer stays in `text` for
the stages after it (tool calls), and each delta says how many of its tokens were thinking.

When a request is parsed (gateway/reasoning/ for the formats):
- the model has a `--reasoning-parser`, and the request did not turn thinking off
  (chat_template_kwargs such as `enable_thinking: false`), nor did the prompt close it;
- and the output is not guided, unless the engine applies the guide to the answer only
  (vLLM with a `reasoning_parser` engine argument in model.json). A guide from the first token
  leaves the model no room to think: the whole output is the answer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from gateway.chat.tools import ToolCallOverflow
from gateway.generation import Delta, TokenizerTools
from gateway.openai.pipeline import StageFactory
from gateway.openai.tools import cut_at_the_parse_limit, finish_with_calls
from gateway.reasoning import FORMATS, ReasoningParser
from gateway.reasoning.harmony import HarmonyParser, HarmonyReasoning


class ReasoningStage:
    """For formats that mark the thinking in the text (gateway/reasoning/markers.py)."""

    __slots__ = ("_parser", "_tokenizer")

    def __init__(self, parser: ReasoningParser, tokenizer: TokenizerTools | None) -> None:
        self._parser = parser
        self._tokenizer = tokenizer

    def feed(self, delta: Delta) -> Delta:
        was_thinking = self._parser.thinking
        reasoning, answer = self._parser.feed(delta.text)
        if delta.finish_reason is not None:
            more_reasoning, more_answer = self._parser.finish()
            reasoning += more_reasoning
            answer += more_answer
        tokens = thinking_tokens(delta, answer, self._parser.thinking, self._tokenizer) if was_thinking else 0
        return dataclasses.replace(delta, text=answer, reasoning=reasoning, reasoning_tokens=tokens)


class HarmonyStage:
    """For gpt-oss's harmony channels (gateway/reasoning/harmony.py), which carry the calls too:
    a choice that made calls and stopped ends with "tool_calls"; a call that outgrows the parse
    limit ends it with "length"."""

    __slots__ = ("_parser", "_tokenizer")

    def __init__(self, parser: HarmonyParser, tokenizer: TokenizerTools | None) -> None:
        self._parser = parser
        self._tokenizer = tokenizer

    def feed(self, delta: Delta) -> Delta:
        was_thinking = self._parser.thinking
        try:
            out = self._parser.feed(delta.text)
            if delta.finish_reason is not None:
                last = self._parser.finish()
                out.reasoning += last.reasoning
                out.content += last.content
                out.calls += last.calls
        except ToolCallOverflow:
            return cut_at_the_parse_limit(delta)
        finish_reason = finish_with_calls(delta.finish_reason, bool(self._parser.calls))
        tokens = thinking_tokens(delta, out.content, self._parser.thinking, self._tokenizer) if was_thinking else 0
        return dataclasses.replace(
            delta,
            text=out.content,
            reasoning=out.reasoning,
            tool_calls=out.calls or None,
            finish_reason=finish_reason,
            reasoning_tokens=tokens,
        )


def thinking_tokens(delta: Delta, answer: str, still_thinking: bool, tokenizer: TokenizerTools | None) -> int | None:
    """The tokens of a delta that arrived while the model was thinking, written before its
    answer began (thinking and markers): all of them while the thinking goes on (the model's
    count where it gives one); where the answer begins inside the delta, the text before it
    is counted with the tokenizer."""
    reported = delta.completion_tokens
    if not answer and still_thinking and reported is not None:
        return reported
    before_answer = delta.text[: max(0, len(delta.text) - len(answer))]
    if not before_answer:
        return 0
    if tokenizer is None:
        return None
    counted = tokenizer.count_tokens(before_answer)
    return counted if reported is None else min(reported, counted)


def reasoning_stage(
    parser_name: str | None,
    template_kwargs: Mapping[str, Any] | None,
    prompt: str,
    guided: bool,
    guide_after_reasoning: bool,
    tokenizer: TokenizerTools | None,
    calls: bool = False,
    max_calls: int | None = None,
    max_bytes: int = 131072,
) -> StageFactory:
    """A choice's reasoning stage, or none when the request's output is not parsed for thinking.
    `calls`: the format's own tool calls are taken (a request with tools, tool_choice auto)."""
    fmt = FORMATS.get(parser_name or "")
    if fmt is None or not fmt.thinks(template_kwargs, prompt) or (guided and not guide_after_reasoning):
        return lambda: None
    if isinstance(fmt, HarmonyReasoning):
        return lambda: HarmonyStage(fmt.parser(calls, max_calls, max_bytes), tokenizer)
    return lambda: ReasoningStage(fmt.parser(), tokenizer)
