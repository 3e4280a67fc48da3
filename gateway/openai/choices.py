"""The choices of one API request: n per prompt, each its own generation request, each the
accumulator of its deltas (text, logprobs, tool calls, token counts, finish reason), and the
usage they add up to."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from gateway.errors import InvalidRequest
from gateway.generation import Delta, GenerationRequest, TokenizerTools, TokenLogprob, ToolCall
from gateway.usage import UsageTracker
from schemas.responses import CompletionTokensDetails, Usage

MAX_CHOICES = 128


@dataclass(slots=True)
class Choice:
    index: int
    prompt_index: int
    request: GenerationRequest
    parts: list[str] = field(default_factory=list)
    length: int = 0  # characters of text so far
    reasoning_parts: list[str] = field(default_factory=list)
    logprobs: list[TokenLogprob] | None = None  # None: not asked for
    call_parts: dict[int, list[ToolCall]] = field(default_factory=dict)  # index -> its parts, in order
    cumulative_logprob: float | None = None
    finish_reason: str | None = None
    tracker: UsageTracker = field(default_factory=UsageTracker)

    def add(self, delta: Delta) -> None:
        """Take one delta that went through the choice's stages."""
        self.tracker.add(delta)
        if delta.text:
            self.parts.append(delta.text)
            self.length += len(delta.text)
        if delta.reasoning:
            self.reasoning_parts.append(delta.reasoning)
        if delta.logprobs is not None:
            if self.logprobs is None:
                self.logprobs = []
            self.logprobs.extend(delta.logprobs)
        for part in delta.tool_calls or ():
            self.call_parts.setdefault(part.index, []).append(part)
        if delta.cumulative_logprob is not None:
            self.cumulative_logprob = delta.cumulative_logprob
        if delta.finish_reason is not None:
            self.finish_reason = delta.finish_reason

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The calls made, each its parts joined."""
        calls = []
        for index in sorted(self.call_parts):
            first, *more = self.call_parts[index]
            arguments = first.arguments + "".join(part.arguments for part in more)
            calls.append(ToolCall(index, first.id, first.name, arguments))
        return calls

    @property
    def reasoning(self) -> str:
        return "".join(self.reasoning_parts)


def plan_choices(base: GenerationRequest, prompts: list[str], n: int) -> list[Choice]:
    """n choices per prompt, indexed prompt by prompt. Each gets its own Triton request id
    and, when a seed is set, its own seed (the same seed n times would give n copies)."""
    if len(prompts) * n > MAX_CHOICES:
        raise InvalidRequest(
            f"A request may ask for at most {MAX_CHOICES} choices (prompts × n); this one asks for {len(prompts) * n}.",
            param="n",
        )
    if len(prompts) == 1 and n == 1:
        return [Choice(0, 0, base)]
    choices = []
    for prompt_index, prompt in enumerate(prompts):
        for copy in range(n):
            index = prompt_index * n + copy
            seed = base.sampling.seed
            request = dataclasses.replace(
                base,
                request_id=f"{base.request_id}-{index}",
                prompt=prompt,
                sampling=dataclasses.replace(base.sampling, seed=None if seed is None else seed + copy),
            )
            choices.append(Choice(index, prompt_index, request))
    return choices


def total_usage(choices: list[Choice], tokenizer: TokenizerTools | None) -> Usage | None:
    """The usage of the whole request, the one place it is added up: each prompt counted once,
    every choice's completion counted (a count the model did not report taken with the
    tokenizer; None when neither can say)."""
    prompt_tokens = completion_tokens = 0
    reasoning_tokens: int | None = None
    counted_prompts: set[int] = set()
    for choice in choices:
        usage = choice.tracker.usage(choice.request.prompt, choice.reasoning + choice.text, tokenizer)
        if usage is None:
            return None
        if choice.prompt_index not in counted_prompts:
            counted_prompts.add(choice.prompt_index)
            prompt_tokens += usage.prompt_tokens
        completion_tokens += usage.completion_tokens
        if choice.tracker.reasoning_tokens is not None:
            reasoning_tokens = (reasoning_tokens or 0) + choice.tracker.reasoning_tokens
    details = None if reasoning_tokens is None else CompletionTokensDetails(min(reasoning_tokens, completion_tokens))
    return Usage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens, details)
