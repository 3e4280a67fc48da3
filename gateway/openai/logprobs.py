"""Token logprobs in OpenAI's two shapes: chat's `content` list and completions' columns."""

from __future__ import annotations

from gateway.generation import TokenLogprob
from schemas.responses import ChatLogprobs, ChatTokenLogprob, CompletionLogprobs, TopLogprob


def _bytes(token: str) -> list[int]:
    return list(token.encode("utf-8"))


def chat_logprobs(tokens: list[TokenLogprob]) -> ChatLogprobs:
    return ChatLogprobs(
        content=[
            ChatTokenLogprob(
                token=token.token,
                logprob=token.logprob,
                bytes=_bytes(token.token),
                top_logprobs=[TopLogprob(text, logprob, _bytes(text)) for text, logprob in token.top],
            )
            for token in tokens
        ]
    )


def completion_logprobs(tokens: list[TokenLogprob], offset: int) -> CompletionLogprobs:
    """`offset`: where the first token starts in the choice's text."""
    offsets = []
    for token in tokens:
        offsets.append(offset)
        offset += len(token.token)
    return CompletionLogprobs(
        tokens=[token.token for token in tokens],
        token_logprobs=[token.logprob for token in tokens],
        top_logprobs=[dict(token.top) for token in tokens],
        text_offset=offsets,
    )
