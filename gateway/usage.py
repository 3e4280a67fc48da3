"""Token usage: from the counts Triton reports, else counted with the model's tokenizer."""

from __future__ import annotations

from gateway.generation import Delta, TokenizerTools
from schemas.responses import Usage


class UsageTracker:
    """Sums the token counts of a request's deltas."""

    __slots__ = ("completion_tokens", "prompt_tokens", "reasoning_tokens")

    def __init__(self) -> None:
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.reasoning_tokens: int | None = None  # None: the reasoning was not parsed

    def add(self, delta: Delta) -> None:
        if delta.prompt_tokens is not None:
            self.prompt_tokens = delta.prompt_tokens
        if delta.completion_tokens is not None:
            self.completion_tokens = (self.completion_tokens or 0) + delta.completion_tokens
        if delta.reasoning_tokens is not None:
            self.reasoning_tokens = (self.reasoning_tokens or 0) + delta.reasoning_tokens

    def usage(self, prompt: str, completion: str, tokenizer: TokenizerTools | None) -> Usage | None:
        """The usage object; counts the model did not report are taken with the model's
        tokenizer (None when there is neither)."""
        prompt_tokens = self.prompt_tokens
        completion_tokens = self.completion_tokens
        if prompt_tokens is None:
            prompt_tokens = tokenizer.prompt_tokens(prompt) if tokenizer else None
        if completion_tokens is None:
            completion_tokens = tokenizer.count_tokens(completion) if tokenizer else None
        if prompt_tokens is None or completion_tokens is None:
            return None
        return Usage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)
