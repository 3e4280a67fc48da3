"""Reasoning formats, by parser name (`--reasoning-parser`): how a model marks the thinking it
writes before its answer. A new format is one entry here, or a module with its own parser."""

from __future__ import annotations

from gateway.reasoning.harmony import HarmonyReasoning
from gateway.reasoning.markers import MarkedReasoning, ReasoningParser, ThinkingSwitch

ReasoningFormat = MarkedReasoning | HarmonyReasoning

FORMATS: dict[str, ReasoningFormat] = {
    # DeepSeek-R1: the chat template opens <think> in the prompt, so the reply usually starts
    # inside the thinking and holds only </think>; no </think> at all means it is all thinking.
    "deepseek_r1": MarkedReasoning(name="deepseek_r1", starts=("<think>",), ends=("</think>",), opens_thinking=True),
    # DeepSeek-V3.1+: R1's markers, but it thinks only when asked (chat_template_kwargs
    # `thinking` or `enable_thinking` true).
    "deepseek_v3": MarkedReasoning(
        name="deepseek_v3",
        starts=("<think>",),
        ends=("</think>",),
        opens_thinking=True,
        switch=ThinkingSwitch(("thinking", "enable_thinking"), default=False),
    ),
    # Qwen3: <think>…</think> (the newer templates open it in the prompt); thinking unless
    # `enable_thinking` is false; a tool call (<tool_call>) during the thinking ends it.
    "qwen3": MarkedReasoning(
        name="qwen3",
        starts=("<think>",),
        ends=("</think>",),
        opens_thinking=True,
        answer_starts=("<tool_call>",),
        switch=ThinkingSwitch(("enable_thinking",), default=True),
    ),
    # IBM Granite 3.2/3.3 (chat_template_kwargs `thinking`): plain-text phrases, the first one
    # at the very start of the reply.
    "granite": MarkedReasoning(
        name="granite",
        starts=("Here is my thought process:", "Here's my thought process:"),
        ends=("Here is my response:", "Here's my response:"),
    ),
    # gpt-oss: harmony channels (analysis: thinking; final: the answer; functions.NAME: calls).
    "openai_gptoss": HarmonyReasoning(),
}

__all__ = ["FORMATS", "HarmonyReasoning", "MarkedReasoning", "ReasoningFormat", "ReasoningParser", "ThinkingSwitch"]
