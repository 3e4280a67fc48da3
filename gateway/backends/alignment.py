"""Per-token logprobs for models that return text and one logprob per generated token, but
not the tokens themselves (TensorRT-LLM's `output_log_probs`).

The tokens are recovered by re-tokenizing the text the client sees with the model's tokenizer,
and paired with the values by position:

* the i-th token of the text gets the i-th value the model reported for the request;
* values beyond the text's tokens are dropped: the end token (counted, but it adds no text)
  and tokens whose text the gateway removed (a stop string and what followed it);
* text beyond the reported values gets no entry (a tokenizer that splits the text into more
  tokens than the model generated), so only then do the tokens not join to the whole text.

When a stop string ends inside a token, that token's visible part is paired with its value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise

from gateway.generation import TokenLogprob


def cut_at(text: str, starts: Sequence[int]) -> list[str]:
    """`text` cut at its tokens' start offsets (as a tokenizer reports them): the first piece
    from 0, each later one from its start, never before the previous one, the last to the end.
    A token that only begins a character (one byte of it) gets an empty piece; the token that
    completes the character gets the character."""
    bounds = [0]
    for start in starts[1:]:
        bounds.append(min(max(start, bounds[-1]), len(text)))
    bounds.append(len(text))
    return [text[begin:end] for begin, end in pairwise(bounds)]


def pair_tokens(pieces: Sequence[str], values: Sequence[float], with_top: bool = False) -> list[TokenLogprob]:
    """The first min(len) tokens paired with the first values; `with_top` lists each token as
    its own only alternative (all that is known of the candidates)."""
    return [
        TokenLogprob(piece, value, ((piece, value),) if with_top else ())
        for piece, value in zip(pieces, values, strict=False)
    ]


class LogprobAligner:
    """Pairs a request's text, as it is shown, with the model's per-token values.

    Streamed text arrives in pieces that need not end on token boundaries, so the text not yet
    sent is re-tokenized each time and its last token waits: more text may still extend it
    (a longer merge). A token also waits for its value. Each call returns the text that may be
    shown now and exactly its tokens, so a chunk's tokens join to the chunk's text; at the end
    everything left is sent. A whole (non-streamed) text is fed once, with `end`."""

    __slots__ = ("_pending", "_split", "_values", "_with_top")

    def __init__(self, split: Callable[[str], list[str]], with_top: bool = False) -> None:
        self._split = split
        self._with_top = with_top
        self._pending = ""  # shown text whose tokens are not sent yet
        self._values: list[float] = []  # values not yet paired with a token

    def feed(self, text: str, values: Sequence[float], end: bool) -> tuple[str, list[TokenLogprob]]:
        """Take the next shown `text` and the values that came with it; (text to send now, its tokens)."""
        self._values.extend(values)
        self._pending += text
        pieces = self._split(self._pending) if self._pending else []
        if end:
            tokens = pair_tokens(pieces, self._values, self._with_top)
            sent, self._pending, self._values = self._pending, "", []
            return sent, tokens
        ready = min(len(pieces) - 1, len(self._values))
        if ready <= 0:
            return "", []
        tokens = pair_tokens(pieces[:ready], self._values, self._with_top)
        sent = "".join(pieces[:ready])
        self._pending = self._pending[len(sent) :]
        del self._values[:ready]
        return sent, tokens
